"""The send job: claim one outbox row, hand it to its route's gateway, settle the row.

The database, not Redis, decides what still has to be sent: a job that runs twice finds the row
already claimed or sent and does nothing; a job that dies mid-send leaves a claim that the sweep
releases after the lease, so the message is retried rather than lost.

A Zalo message that can never arrive (the citizen is unreachable on Zalo, outside the OA window,
or the retries ran out) moves its survey to SMS in the same transaction that settles the row
(flows.zalo_survey.fall_back_to_sms), and the SMS that re-ask the pending question are queued.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

import structlog

from flows.zalo_survey import fall_back_to_sms
from storage import outbox
from storage.fsm import RedisStateStorage
from storage.models import Channel, OutboundMessage, Route
from workers.gateways import Gateway, Outgoing, SendError, gateway_for, route_of
from workers.queues import queue
from workers.runtime import Runtime, get_runtime
from workers.zalo_window import oa_window_refusal

log = structlog.get_logger(__name__)

GatewayFactory = Callable[[Runtime, Route], Gateway]


def send_message(message_id: int) -> str:
    """RQ job: send outbox row `message_id` once."""
    return deliver(get_runtime(), message_id)


def enqueue_sends(runtime: Runtime, message_ids: Iterable[int]) -> None:
    """Queue a send job per stored message; the job id makes a repeated enqueue harmless."""
    q = queue(runtime.redis)
    for message_id in message_ids:
        q.enqueue(send_message, message_id, job_id=f"send-{message_id}")


def deliver(
    runtime: Runtime,
    message_id: int,
    now: datetime | None = None,
    gateways: GatewayFactory = gateway_for,
) -> str:
    """Send one message if it is due and unclaimed. Returns what happened, for logs and tests."""
    now = now or datetime.now(UTC)
    with runtime.sessions() as session, session.begin():
        message = outbox.claim(session, message_id, now)
        if message is None:
            return "skipped"
        outgoing = Outgoing(
            message_id=message.id,
            survey_id=message.survey_id,
            route=route_of(message.channel, message.route),
            to=runtime.vault.decrypt(message.recipient_enc),
            text=message.text,
            payload=message.payload,
        )
        refusal = (
            oa_window_refusal(session, runtime, message, outgoing.to, now)
            if outgoing.route is Route.ZALO_OA
            else None
        )
    try:
        if refusal is not None:
            raise SendError(refusal, retryable=False, unreachable=True)
        with gateways(runtime, outgoing.route) as gateway:
            result = gateway.send(outgoing)
    except SendError as exc:
        return _settle_failure(runtime, message_id, exc)
    with runtime.sessions() as session, session.begin():
        row = session.get(OutboundMessage, message_id, with_for_update=True)
        assert row is not None
        outbox.mark_sent(
            session,
            row,
            provider_id=result.provider_id,
            segments=result.segments,
            coding=result.coding,
            now=datetime.now(UTC),
        )
    log.info(
        "message sent",
        message_id=message_id,
        route=outgoing.route.value,
        segments=result.segments,
        coding=result.coding,
    )
    return "sent"


def _settle_failure(runtime: Runtime, message_id: int, exc: SendError) -> str:
    """Record the failed attempt; a retry is scheduled, or the row is given up, and a given-up
    Zalo survey message moves its survey to SMS (once: the survey is no longer on Zalo after)."""
    now = datetime.now(UTC)
    fallback_ids: list[int] = []
    with runtime.sessions() as session, session.begin():
        row = session.get(OutboundMessage, message_id, with_for_update=True)
        assert row is not None
        retry_at = outbox.mark_attempt_failed(
            session, row, error=str(exc), retryable=exc.retryable and not exc.unreachable, now=now
        )
        if retry_at is not None and exc.retry_after is not None:
            # The provider said how long to wait (HTTP Retry-After): never come back sooner.
            retry_at = max(retry_at, now + timedelta(seconds=exc.retry_after))
            row.next_attempt_at = retry_at
        attempts, survey_id, channel = row.attempts, row.survey_id, row.channel
        if retry_at is None and channel is Channel.ZALO and survey_id is not None:
            reason = f"zalo {'unreachable' if exc.unreachable else 'failed'}: {exc}"
            fallback_ids = fall_back_to_sms(
                session, RedisStateStorage(runtime.redis), runtime.settings, survey_id, reason, now
            )
    if retry_at is None:
        log.warning(
            "message failed",
            message_id=message_id,
            attempts=attempts,
            error=str(exc),
            unreachable=exc.unreachable,
            fallback_messages=len(fallback_ids),
        )
        enqueue_sends(runtime, fallback_ids)
        return "fallback" if fallback_ids else "failed"
    queue(runtime.redis).enqueue_at(
        retry_at, send_message, message_id, job_id=f"send-{message_id}-{attempts}"
    )
    log.info(
        "message will be retried", message_id=message_id, attempts=attempts, retry_at=retry_at.isoformat()
    )
    return "retry"
