"""The send job: claim one outbox row, hand it to its route's gateway, settle the row.

The database, not Redis, decides what still has to be sent: a job that runs twice finds the row
already claimed or sent and does nothing; a job that dies mid-send leaves a claim that the sweep
sets aside as `unknown` after the lease (storage.outbox says why it is never resent by itself).

A Zalo message that can never arrive (the citizen is unreachable on Zalo, outside the OA window,
or the retries ran out) moves its survey to SMS in the same transaction that settles the row
(flows.zalo_survey.fall_back_to_sms), and the SMS that re-ask the pending question are queued.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime

import structlog
from sqlalchemy.orm import Session

from flows.zalo_survey import fall_back_to_sms
from storage import outbox
from storage.fsm import RedisStateStorage
from storage.models import Channel, OutboundMessage, Route
from workers.caps import Caps
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
    """Send one message if it is due, unclaimed and has attempts left. Returns what happened."""
    now = now or datetime.now(UTC)
    with runtime.sessions() as session, session.begin():
        claims = outbox.claim_due(session, now, 1, ids=[message_id])
        if not claims:
            return "skipped"
        [claim] = claims
        outgoing = Outgoing(
            message_id=claim.id,
            survey_id=claim.survey_id,
            route=route_of(claim.channel, claim.route),
            to=runtime.vault.decrypt(claim.recipient_enc),
            text=claim.text,
            payload=claim.payload,
        )
        refusal = (
            oa_window_refusal(session, runtime, _row(session, claim.id), outgoing.to, now)
            if outgoing.route is Route.ZALO_OA
            else None
        )
    capped = Caps(runtime.redis, runtime.settings).send_refusal(
        claim.survey_id, runtime.vault.lookup_hash(outgoing.to), now
    )
    if capped is not None:
        return _settle_failure(runtime, claim.id, claim.token, SendError(capped, retryable=False))
    try:
        if refusal is not None:
            raise SendError(refusal, retryable=False, unreachable=True)
        with gateways(runtime, outgoing.route) as gateway:
            result = gateway.send(outgoing)
    except SendError as exc:
        return _settle_failure(runtime, claim.id, claim.token, exc)
    with runtime.sessions() as session, session.begin():
        ours = outbox.mark_sent(
            session,
            claim.id,
            claim.token,
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
        claim_current=ours,
    )
    return "sent"


def _row(session: Session, message_id: int) -> OutboundMessage:
    row = session.get(OutboundMessage, message_id)
    assert row is not None
    return row


def _settle_failure(runtime: Runtime, message_id: int, token: str, exc: SendError) -> str:
    """Record the failed attempt; a retry is scheduled, the row is set aside as unknown (the
    gateway may have it) or given up, and a given-up Zalo survey message moves its survey to
    SMS (once: the survey is no longer on Zalo after)."""
    now = datetime.now(UTC)
    fallback_ids: list[int] = []
    with runtime.sessions() as session, session.begin():
        failure = outbox.mark_attempt_failed(
            session,
            message_id,
            token,
            error=str(exc),
            retryable=exc.retryable and not exc.unreachable,
            ambiguous=exc.ambiguous,
            retry_after=exc.retry_after,
            now=now,
        )
        row = _row(session, message_id)
        survey_id, channel = row.survey_id, row.channel
        if failure.outcome == "failed" and channel is Channel.ZALO and survey_id is not None:
            reason = f"zalo {'unreachable' if exc.unreachable else 'failed'}: {exc}"
            fallback_ids = fall_back_to_sms(
                session, RedisStateStorage(runtime.redis), runtime.settings, survey_id, reason, now
            )
    if failure.outcome == "unknown":
        log.warning(
            "message outcome unknown", message_id=message_id, attempts=failure.attempts, error=str(exc)
        )
        return "unknown"
    if failure.retry_at is None:
        log.warning(
            "message failed",
            message_id=message_id,
            attempts=failure.attempts,
            error=str(exc),
            unreachable=exc.unreachable,
            fallback_messages=len(fallback_ids),
        )
        enqueue_sends(runtime, fallback_ids)
        return "fallback" if fallback_ids else failure.outcome
    queue(runtime.redis).enqueue_at(
        failure.retry_at, send_message, message_id, job_id=f"send-{message_id}-{failure.attempts}"
    )
    log.info(
        "message will be retried",
        message_id=message_id,
        attempts=failure.attempts,
        retry_at=failure.retry_at.isoformat(),
    )
    return "retry"
