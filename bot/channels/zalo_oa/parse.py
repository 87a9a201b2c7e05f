"""Reading Zalo Official Account and ZNS events (the OA webhook, and ZNS ratings read back by
workers/zalo_reconcile.py in the shape of the `user_feedback` event).

Provider id: `<event_name>:<message.msg_id>`. The event name is part of it because several events
refer to the same msg_id (`user_received_message` and `user_feedback` both name the ZNS message
they are about). Events without a msg_id (follow, unfollow) use `<event_name>:sha256:<hex>` of the
canonical JSON body, so Zalo's retry of the same body is still recognised.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from bot.channels.zalo.events import KIND_MAX, InboundRecord, body_hash, event_object, fit, member, some_id
from bot.channels.zalo.types import OAEvent, OAEventName, citizen_side, parse_oa_event

__all__ = ["PROVIDER_OA", "describe_oa_event", "parse_stored", "rating_id", "read_event"]

PROVIDER_OA = "zalo_oa"


def describe_oa_event(payload: Any) -> InboundRecord:
    """Name an OA/ZNS event for storage (raises NotAnEventError when it is none). An event our
    models refuse is named all the same: stored, the worker reports what is wrong with it."""
    event = event_object(payload)
    name = str(event["event_name"])
    text: str | None = None
    try:
        parsed = parse_oa_event(event)
        msg_id, sender, text = parsed.msg_id, parsed.user_id, parsed.text
    except ValidationError:
        message = member(event, "message")
        msg_id = some_id(message.get("msg_id") or message.get("msgId"))
        side = citizen_side(name)
        sender = some_id(member(event, side).get("id")) if side else None
    prefix = f"{name}:"
    provider_id = fit(prefix + msg_id, event, prefix) if msg_id else prefix + body_hash(event)
    return InboundRecord(PROVIDER_OA, name[:KIND_MAX], provider_id, sender, text)


def rating_id(msg_id: str) -> str:
    """The provider id of the rating of ZNS message `msg_id`, whether the `user_feedback` webhook
    or the nightly `rating/get` brought it (so each rating is stored once)."""
    return f"{OAEventName.USER_FEEDBACK.value}:{msg_id}"


def parse_stored(payload: str) -> InboundRecord:
    """The stored copy of an event read as its webhook read it (raises ValueError)."""
    return describe_oa_event(json.loads(payload))


def read_event(payload: str) -> OAEvent:
    """The stored copy as the typed event the Zalo router handles (raises ValidationError or
    JSONDecodeError for a body our models cannot read)."""
    return parse_oa_event(json.loads(payload))
