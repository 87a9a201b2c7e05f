"""`sipas flows simulate`: a citizen's replies through a flow, without sending anything.

Staff try a flow (a file before publishing it, or a published or shipped one by name) exactly as a
citizen would meet it: the same engine as real surveys, each reply read against the state the
previous step left, as flows.survey reads it from the survey row. Output (contract.md, CLI): a
first JSON object with the opening messages and the first state, then one per reply line.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from flows.definition import Flow
from flows.engine import Conversation
from storage.models import Channel

__all__ = ["SAMPLE_VALUES", "simulate"]

# What the texts show for {agency} and {case_id} unless staff give their own.
SAMPLE_VALUES = {"agency": "UBND phường Thanh Xuân", "case_id": "000.00.20.H29-250715-0001"}


def simulate(
    flow: Flow,
    replies: Iterable[str],
    *,
    channel: Channel | None = None,
    language: str | None = None,
    values: Mapping[str, str] = SAMPLE_VALUES,
) -> Iterator[dict[str, Any]]:
    """The opening line, then one line per reply (each a JSON-able dict)."""
    conversation = Conversation(flow, language, values, channel)
    opening = conversation.open()
    state = opening.state
    yield opening.opening_json()
    for reply in replies:
        step = conversation.reply(state, reply)
        state = step.state
        yield step.to_json()
