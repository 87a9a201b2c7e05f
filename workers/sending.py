"""The send job: claim one outbox row, hand it to its channel's gateway, settle the row.

The database, not Redis, decides what still has to be sent: a job that runs twice finds the row
already claimed or sent and does nothing; a job that dies mid-send leaves a claim that the sweep
releases after the lease, so the message is retried rather than lost.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

import structlog

from bot.channels.sms import OutgoingSms, SmsGateway, SmsSendError
from storage import outbox
from storage.models import Channel, OutboundMessage
from workers.gateways import gateway_for
from workers.queues import queue
from workers.runtime import Runtime, get_runtime

log = structlog.get_logger(__name__)


def send_message(message_id: int) -> str:
    """RQ job: send outbox row `message_id` once."""
    runtime = get_runtime()
    with gateway_for(runtime.settings, Channel.SMS) as gateway:
        return deliver(runtime, message_id, gateway)


def enqueue_sends(runtime: Runtime, message_ids: Iterable[int]) -> None:
    """Queue a send job per stored message; the job id makes a repeated enqueue harmless."""
    q = queue(runtime.redis)
    for message_id in message_ids:
        q.enqueue(send_message, message_id, job_id=f"send-{message_id}")


def deliver(runtime: Runtime, message_id: int, gateway: SmsGateway, now: datetime | None = None) -> str:
    """Send one message if it is due and unclaimed. Returns what happened, for logs and tests."""
    now = now or datetime.now(UTC)
    with runtime.sessions() as session, session.begin():
        message = outbox.claim(session, message_id, now)
        if message is None:
            return "skipped"
        sms = OutgoingSms(
            to=runtime.vault.decrypt(message.recipient_enc), text=message.text, ref=str(message.id)
        )
    try:
        result = gateway.send(sms)
    except SmsSendError as exc:
        return _settle_failure(runtime, message_id, exc)
    with runtime.sessions() as session, session.begin():
        row = session.get(OutboundMessage, message_id, with_for_update=True)
        assert row is not None
        outbox.mark_sent(
            session,
            row,
            provider_id=result.provider_id or str(message_id),
            segments=result.segments,
            coding=result.coding,
            now=datetime.now(UTC),
        )
    log.info("message sent", message_id=message_id, segments=result.segments, coding=result.coding)
    return "sent"


def _settle_failure(runtime: Runtime, message_id: int, exc: SmsSendError) -> str:
    with runtime.sessions() as session, session.begin():
        row = session.get(OutboundMessage, message_id, with_for_update=True)
        assert row is not None
        retry_at = outbox.mark_attempt_failed(
            session, row, error=str(exc), retryable=exc.retryable, now=datetime.now(UTC)
        )
        attempts = row.attempts
    if retry_at is None:
        log.warning("message failed", message_id=message_id, attempts=attempts, error=str(exc))
        return "failed"
    queue(runtime.redis).enqueue_at(
        retry_at, send_message, message_id, job_id=f"send-{message_id}-{attempts}"
    )
    log.info(
        "message will be retried", message_id=message_id, attempts=attempts, retry_at=retry_at.isoformat()
    )
    return "retry"
