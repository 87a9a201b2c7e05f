"""Naming a Zalo event for storage: what both Zalo providers (bot/channels/zalo_bot, zalo_oa) share.

A webhook, `sipas zalo poll` and the nightly rating reconciliation all store an event through
bot.channels.intake under the name its provider's `parse.describe_*_event` gives it: the
provider, the event name as `kind`, a provider id that makes Zalo's redelivery a duplicate, the
citizen's id (only its keyed hash is stored in clear) and the text, if the event carries one.
Naming reads as little as it can on purpose: an authenticated event our models do not understand
is still stored (under its event name, identified by a hash of its body), so nothing Zalo
delivered is lost; the worker decides what it means.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.channels.zalo.types import unwrap_envelope

__all__ = [
    "KIND_MAX",
    "InboundRecord",
    "NotAnEventError",
    "body_hash",
    "event_object",
    "fit",
    "member",
    "some_id",
]

KIND_MAX = 32  # inbound_events.kind
_PROVIDER_ID_MAX = 128  # inbound_events.provider_id


class NotAnEventError(ValueError):
    """The body is JSON but not an event object (no `event_name`): the webhook answers 400."""


@dataclass(frozen=True)
class InboundRecord:
    """A Zalo event as the channels store it, the neutral reading of both Zalo providers."""

    provider: str  # InboundEvent.provider: zalo_bot or zalo_oa
    kind: str  # the event name, e.g. message.text.received, user_send_text, user_feedback
    provider_id: str  # the same for Zalo's redelivery of the same event
    sender: str | None  # the citizen's Zalo id (chat or user id), when the event names one
    text: str | None  # what the citizen wrote, NFC, when the event is a text message


def some_id(value: Any) -> str | None:
    """A Zalo id as a string (Zalo sends ids as numbers or strings); None for anything else."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | str) and str(value):
        return str(value)
    return None


def member(parent: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """`parent[key]` when it is an object, else an empty one (a lenient reader of event bodies)."""
    value = parent.get(key)
    return value if isinstance(value, Mapping) else {}


def event_object(payload: Any) -> Mapping[str, Any]:
    """The event inside a wrapped (`{ok, result}`) or bare body; NotAnEventError when there is none."""
    event = unwrap_envelope(payload)
    if not isinstance(event, Mapping):
        raise NotAnEventError("the body is not a JSON object")
    name = event.get("event_name")
    if not isinstance(name, str) or not name:
        raise NotAnEventError("the body has no event_name")
    return event


def body_hash(event: Mapping[str, Any]) -> str:
    """`sha256:<hex>` of the canonical JSON of `event`: the id of an event that carries none."""
    canonical = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def fit(provider_id: str, event: Mapping[str, Any], prefix: str = "") -> str:
    """`provider_id`, or `prefix` + the body hash when it is too long for the column."""
    return provider_id if len(provider_id) <= _PROVIDER_ID_MAX else prefix + body_hash(event)
