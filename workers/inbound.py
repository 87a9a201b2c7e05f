"""The inbound job: turn one stored provider event into answers and replies, exactly once.

Kannel MOs are handled here; Zalo Bot Platform and OA/ZNS events by workers.zalo_inbound.

The event row is locked and marked processed in the same transaction that records the answers,
so a retried or duplicated job finds it processed and does nothing; the conversation lock keeps
two replies of one citizen from being interpreted against the same question.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import structlog

from bot.channels.kannel import KannelGateway
from flows.inbox import receive as receive_in_inbox
from flows.opt_in import handle_opt_in
from flows.survey import find_active_survey, handle_reply, record_opt_out
from flows.understanding import Keyword, ReplyKind, parse_reply
from storage.fsm import RedisStateStorage
from storage.inbound import lock_unprocessed
from storage.models import Channel, InboundEvent
from workers.caps import Caps
from workers.runtime import Runtime, get_runtime
from workers.sending import enqueue_sends
from workers.zalo_inbound import ZALO_PROVIDERS, process_zalo_event

log = structlog.get_logger(__name__)


def process_inbound_event(event_id: int) -> str:
    """RQ job: process stored inbound event `event_id` (idempotent)."""
    runtime = get_runtime()
    result, outbox_ids = process(runtime, event_id)
    enqueue_sends(runtime, outbox_ids)
    return result


def process(runtime: Runtime, event_id: int, now: datetime | None = None) -> tuple[str, list[int]]:
    """Apply the event; returns (what happened, outbox ids to send)."""
    now = now or datetime.now(UTC)
    states = RedisStateStorage(runtime.redis)
    with runtime.sessions() as session, session.begin():
        event = lock_unprocessed(session, event_id)
        if event is None:
            return "already processed", []
        event.attempts += 1
        if event.sender_hash and not Caps(runtime.redis, runtime.settings).inbound_allowed(
            event.sender_hash, now
        ):
            return _finish(event, now, "stored, not acted on: sender over its events a minute"), []
        if event.provider in ZALO_PROVIDERS:
            result, outbox_ids = process_zalo_event(runtime, session, event, now)
            return _finish(event, now, result), outbox_ids
        if (event.provider, event.kind) != ("kannel", "mo"):
            return _finish(event, now, f"ignored {event.provider}/{event.kind}"), []
        sms = KannelGateway.parse_inbound(json.loads(runtime.vault.decrypt(event.payload_enc)))
        survey = find_active_survey(session, Channel.SMS, event.sender_hash or "")
        if survey is None:
            if event.sender_hash and parse_reply(sms.text, ReplyKind.TEXT).keyword is Keyword.OPT_OUT:
                record_opt_out(session, event.sender_hash, "sms")
                return _finish(event, now, "opt-out without active survey"), []
            opt_in = handle_opt_in(
                session,
                runtime.vault,
                sms.sender,
                event.sender_hash or "",
                sms.text,
                f"optin:{event.id}:",
                now,
            )
            if opt_in is not None:
                return _finish(event, now, opt_in.step.value), list(opt_in.outbox_ids)
            if event.sender_hash:
                # Outside any survey: kept for the unit's staff, answered once a day (flows.inbox).
                received = receive_in_inbox(
                    session, runtime.settings, runtime.vault, inbound_event_id=event.id,
                    sender=sms.sender, sender_hash=event.sender_hash, text=sms.text,
                    channel=Channel.SMS, now=now,
                )  # fmt: skip
                return _finish(event, now, f"inbox {received.message_id}"), list(received.outbox_ids)
            return _finish(event, now, "no active survey for sender"), []
        outbox_ids = handle_reply(session, states, survey, sms.text, event.id, now)
        return _finish(event, now, f"survey {survey.id}"), outbox_ids


def _finish(event: InboundEvent, now: datetime, result: str) -> str:
    event.processed_at = now
    event.result = result
    log.info("inbound processed", event_id=event.id, result=result)
    return result
