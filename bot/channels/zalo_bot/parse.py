"""Reading Zalo Bot Platform events (webhook bodies and getUpdates results, wrapped or bare).

Provider id (what makes Zalo's redelivery a duplicate): `message.message_id`; an event without
one is identified by the hash of its body.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

from bot.channels.zalo.events import KIND_MAX, InboundRecord, body_hash, event_object, fit, member, some_id
from bot.channels.zalo.types import BotUpdate, parse_bot_update

__all__ = ["PROVIDER_BOT", "describe_bot_event", "parse_stored", "read_update"]

PROVIDER_BOT = "zalo_bot"


def describe_bot_event(payload: Any) -> InboundRecord:
    """Name a Bot Platform event for storage (raises NotAnEventError when it is none)."""
    event = event_object(payload)
    message = member(event, "message")
    sender, chat = member(message, "from"), member(message, "chat")
    message_id = some_id(message.get("message_id"))
    text = message.get("text")
    return InboundRecord(
        provider=PROVIDER_BOT,
        kind=str(event["event_name"])[:KIND_MAX],
        provider_id=fit(message_id, event) if message_id else body_hash(event),
        sender=some_id(sender.get("id")) or some_id(chat.get("id")),
        text=unicodedata.normalize("NFC", text) if isinstance(text, str) else None,
    )


def parse_stored(payload: str) -> InboundRecord:
    """The stored copy of an event read as its webhook read it (raises ValueError)."""
    return describe_bot_event(json.loads(payload))


def read_update(payload: str) -> BotUpdate:
    """The stored copy as the typed update the Zalo router handles (raises ValidationError or
    JSONDecodeError for a body our models cannot read)."""
    return parse_bot_update(json.loads(payload))
