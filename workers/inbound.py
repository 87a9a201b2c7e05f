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
from flows.survey import find_active_survey, handle_reply, record_opt_out
from flows.understanding import Keyword, ReplyKind, parse_reply
from storage.fsm import RedisStateStorage
from storage.inbound import lock_unprocessed
from storage.models import Channel, InboundEvent
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
            return _finish(event, now, "no active survey for sender"), []
        outbox_ids = handle_reply(session, states, survey, sms.text, event.id, now)
        return _finish(event, now, f"survey {survey.id}"), outbox_ids


def _finish(event: InboundEvent, now: datetime, result: str) -> str:
    event.processed_at = now
    event.result = result
    log.info("inbound processed", event_id=event.id, result=result)
    return result
