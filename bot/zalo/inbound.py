"""Accepting a Zalo event: name it, store it raw and encrypted, then hand it to the workers.

Shared by the webhooks (bot.webhooks.zalo) and the development long-poller (`sipas zalo poll`),
so an event is stored the same way whichever road it came by. Storing is reading-light on purpose:
an authenticated event that our models do not understand is still stored (under its event name,
identified by a hash of its body) so that nothing Zalo delivered is lost; the worker decides.

Provider ids, which make a redelivery a duplicate:
- Bot Platform: `message.message_id`.
- OA/ZNS: `<event_name>:<message.msg_id>`. The event name is part of it because several events
  refer to the same msg_id (`user_received_message` and `user_feedback` both name the ZNS message
  they are about). Events without a msg_id (follow, unfollow) use `<event_name>:sha256:<hex>` of
  the canonical JSON body, so Zalo's retry of the same body is still recognised.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from bot.context import JobDispatcher
from bot.zalo.types import citizen_side, parse_oa_event, unwrap_envelope
from storage.crypto import PhoneVault
from storage.inbound import Stored, store_event

__all__ = [
    "DISPATCH_TIMEOUT",
    "PROVIDER_BOT",
    "PROVIDER_OA",
    "InboundRecord",
    "NotAnEventError",
    "accept_event",
    "describe_bot_event",
    "describe_oa_event",
    "store_record",
]

log = structlog.get_logger(__name__)

PROVIDER_BOT = "zalo_bot"
PROVIDER_OA = "zalo_oa"
# Handing over to the queue must not eat the 2 s Zalo gives us; a missed hand-over is recovered by
# the sweep of unprocessed events, because the event is already stored.
DISPATCH_TIMEOUT = 1.0
_KIND_MAX = 32
_PROVIDER_ID_MAX = 128


class NotAnEventError(ValueError):
    """The body is JSON but not an event object (no `event_name`)."""


@dataclass(frozen=True)
class InboundRecord:
    provider: str
    kind: str
    provider_id: str
    user_id: str | None


def _id(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | str) and str(value):
        return str(value)
    return None


def _member(parent: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = parent.get(key)
    return value if isinstance(value, Mapping) else {}


def _event_object(payload: Any) -> Mapping[str, Any]:
    event = unwrap_envelope(payload)
    if not isinstance(event, Mapping):
        raise NotAnEventError("the body is not a JSON object")
    name = event.get("event_name")
    if not isinstance(name, str) or not name:
        raise NotAnEventError("the body has no event_name")
    return event


def body_hash(event: Mapping[str, Any]) -> str:
    canonical = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _fit(provider_id: str, event: Mapping[str, Any], prefix: str = "") -> str:
    return provider_id if len(provider_id) <= _PROVIDER_ID_MAX else prefix + body_hash(event)


def describe_bot_event(payload: Any) -> InboundRecord:
    """Name a Bot Platform event (wrapped or bare body)."""
    event = _event_object(payload)
    message = _member(event, "message")
    sender, chat = _member(message, "from"), _member(message, "chat")
    message_id = _id(message.get("message_id"))
    return InboundRecord(
        provider=PROVIDER_BOT,
        kind=str(event["event_name"])[:_KIND_MAX],
        provider_id=_fit(message_id, event) if message_id else body_hash(event),
        user_id=_id(sender.get("id")) or _id(chat.get("id")),
    )


def describe_oa_event(payload: Any) -> InboundRecord:
    """Name an OA/ZNS event."""
    event = _event_object(payload)
    name = str(event["event_name"])
    try:
        parsed = parse_oa_event(event)
        msg_id, user_id = parsed.msg_id, parsed.user_id
    except ValidationError:  # stored anyway; the worker reports what is wrong with it
        message = _member(event, "message")
        msg_id = _id(message.get("msg_id") or message.get("msgId"))
        side = citizen_side(name)
        user_id = _id(_member(event, side).get("id")) if side else None
    prefix = f"{name}:"
    provider_id = _fit(prefix + msg_id, event, prefix) if msg_id else prefix + body_hash(event)
    return InboundRecord(PROVIDER_OA, name[:_KIND_MAX], provider_id, user_id)


def store_record(
    sessions: sessionmaker[Session], vault: PhoneVault, record: InboundRecord, raw: str
) -> Stored:
    """Blocking: one transaction that stores the event once (see storage.inbound.store_event)."""
    with sessions() as session, session.begin():
        return store_event(
            session,
            provider=record.provider,
            kind=record.kind,
            provider_id=record.provider_id,
            payload_enc=vault.encrypt(raw),
            sender_hash=vault.lookup_hash(record.user_id) if record.user_id else None,
        )


async def accept_event(
    sessions: sessionmaker[Session],
    vault: PhoneVault,
    dispatcher: JobDispatcher,
    record: InboundRecord,
    raw: str,
) -> Stored:
    """Store (committed) and only then hand over to the workers; a duplicate is not handed over."""
    stored = await asyncio.to_thread(store_record, sessions, vault, record, raw)
    if stored.duplicate:
        log.info("zalo_event_duplicate", provider=record.provider, kind=record.kind, event_id=stored.event_id)
        return stored
    try:
        await asyncio.wait_for(
            asyncio.to_thread(dispatcher.inbound_received, stored.event_id), timeout=DISPATCH_TIMEOUT
        )
    except Exception as exc:  # stored already: the sweep of unprocessed events will pick it up
        log.warning(
            "zalo_event_dispatch_failed", event_id=stored.event_id, error=type(exc).__name__, kind=record.kind
        )
    else:
        log.info("zalo_event_stored", provider=record.provider, kind=record.kind, event_id=stored.event_id)
    return stored
