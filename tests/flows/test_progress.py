"""Honest progress (issue 11): whatever a citizen answers, every message's count holds.

The property: along any conversation, the range `{total}` shown ("3-5") always contains the
number of questions the citizen is finally asked, each range lies within the one shown before,
and the question number never exceeds it. Checked on the shipped flows and on a flow with a loop,
with the numbers read back from the SMS texts themselves.
"""

from __future__ import annotations

import re
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.definition import Flow
from flows.engine import Conversation, ConversationStatus
from flows.loading import FLOWS_DIR, check_source, load_flow
from storage.models import Channel

DATA = Path(__file__).parent / "data"
VALUES = {"agency": "UBND phuong Ha Dinh", "case_id": "HD-1"}
# What citizens send: answers, a refusal to answer, help, text, a yes/no, an out-of-range number.
REPLIES = st.sampled_from(["1", "2", "3", "4", "5", "abc", "HD", "khong", "co", "Lau qua", "9"])
_COUNT = re.compile(r"\b(?:Cau |cau |Q|Question |Câu )(\d+)/(\d+)(?:-(\d+))?")


def _looping() -> Flow:
    data: dict[str, Any] = yaml.safe_load((DATA / "valid-branching.yaml").read_text(encoding="utf-8"))
    data["scales"]["yesno"] = {"vi": "1 Dung, 2 Sai", "en": "1 Right, 2 Wrong"}
    data["questions"].insert(
        2,
        {
            "key": "confirm",
            "kind": "yesno",
            "text": {
                "vi": "Cau {number}/{total}: dung chua? {scale}",
                "en": "Q{number}/{total}: right? {scale}",
            },
            "next": [
                {"when": {"question": "confirm", "in": [2]}, "goto": "overall"},
                {"when": {"question": "overall", "min": 4}, "goto": "end"},
            ],
        },
    )
    report = check_source(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), "looping.yaml")
    assert report.flow is not None, report.describe()
    return report.flow


FLOWS = {
    "sipas-sms": load_flow(FLOWS_DIR / "sipas-sms.yaml"),
    "sipas-zalo": load_flow(FLOWS_DIR / "sipas-zalo.yaml"),
    "valid-branching": load_flow(DATA / "valid-branching.yaml"),
    "looping": _looping(),
}


def _counts(messages: tuple[str, ...]) -> list[tuple[int, int, int]]:
    """(number, fewest, most) of every "Cau 2/3-5" in the messages."""
    return [
        (int(m.group(1)), int(m.group(2)), int(m.group(3) or m.group(2)))
        for text in messages
        for m in _COUNT.finditer(text)
    ]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(FLOWS)), st.sampled_from(["vi", "en"]), st.lists(REPLIES, max_size=14))
def test_every_count_shown_holds_whatever_the_answers(name: str, language: str, replies: list[str]) -> None:
    flow = FLOWS[name]
    conversation = Conversation(flow, language, VALUES, Channel.SMS)
    step = conversation.open()
    shown = _counts(step.messages)
    state = step.state
    for reply in replies:
        if state.status is not ConversationStatus.ASKING:
            break
        step = conversation.reply(state, reply)
        state = step.state
        shown += _counts(step.messages)
    assert shown, "every flow here numbers its questions"
    for (_, low, high), (number, next_low, next_high) in pairwise(shown):
        assert low <= next_low <= next_high <= high, shown  # a range never widens
        assert number <= next_high
    if state.status is ConversationStatus.DONE:
        asked = len(state.path)
        assert all(low <= asked <= high for _, low, high in shown), (shown, state.path)


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_the_opening_range_is_the_shortest_and_longest_path(name: str) -> None:
    flow = FLOWS[name]
    first = flow.start()
    assert first is not None
    number, (low, high) = flow.progress(first, {}, (first.key,))
    expected = {"sipas-sms": (3, 5), "sipas-zalo": (6, 6), "valid-branching": (2, 4), "looping": (3, 11)}
    assert (number, low, high) == (1, *expected[name])
