"""The outbox: every message is stored before it is sent, then claimed, sent and settled.

A message moves queued → sending → sent → delivered, or ends failed. `claim` is a conditional
update, so two workers (or a job that runs twice) never send the same row twice; a claim that
is never settled (worker killed mid-send) goes back to queued after the lease expires.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.models import Channel, OutboundMessage, OutboxStatus, Route

MAX_ATTEMPTS = 3
# Kannel delivery-report codes (%d) and what they mean for the row.
DLR_DELIVERED, DLR_FAILED, DLR_BUFFERED, DLR_SMSC_ACCEPTED, DLR_SMSC_REJECTED = 1, 2, 4, 8, 16


def add_message(
    session: Session,
    *,
    dedupe_key: str,
    channel: Channel,
    recipient_enc: str,
    text: str,
    survey_id: int | None = None,
    not_before: datetime | None = None,
    route: Route | None = None,
    payload: dict[str, Any] | None = None,
) -> OutboundMessage:
    """Store a message once per `dedupe_key`; a second call returns the row already stored."""
    existing = session.scalar(select(OutboundMessage).where(OutboundMessage.dedupe_key == dedupe_key))
    if existing is not None:
        return existing
    message = OutboundMessage(
        dedupe_key=dedupe_key,
        channel=channel,
        recipient_enc=recipient_enc,
        text=text,
        survey_id=survey_id,
        status=OutboxStatus.QUEUED,
        route=route,
        payload=payload,
    )
    if not_before is not None:
        message.next_attempt_at = not_before
    try:
        with session.begin_nested():
            session.add(message)
    except IntegrityError:
        # Another transaction stored the same key first; theirs is the message.
        return session.scalars(select(OutboundMessage).where(OutboundMessage.dedupe_key == dedupe_key)).one()
    return message


def claim(session: Session, message_id: int, now: datetime) -> OutboundMessage | None:
    """Take a due message for sending (attempts + 1), or None if it is not ours to send."""
    result = session.execute(
        update(OutboundMessage)
        .where(
            OutboundMessage.id == message_id,
            OutboundMessage.status == OutboxStatus.QUEUED,
            OutboundMessage.next_attempt_at <= now,
        )
        .values(
            status=OutboxStatus.SENDING,
            attempts=OutboundMessage.attempts + 1,
            claimed_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return session.get(OutboundMessage, message_id, populate_existing=True)


def mark_sent(
    session: Session, message: OutboundMessage, *, provider_id: str, segments: int, coding: str, now: datetime
) -> None:
    message.status = OutboxStatus.SENT
    message.provider_id = provider_id
    message.segments = segments
    message.coding = coding
    message.sent_at = now
    message.last_error = None


def mark_attempt_failed(
    session: Session, message: OutboundMessage, *, error: str, retryable: bool, now: datetime
) -> datetime | None:
    """Record a failed attempt. Returns when to try again, or None when the message is given up."""
    message.last_error = error[:2000]
    if retryable and message.attempts < MAX_ATTEMPTS:
        retry_at = now + backoff(message.attempts)
        message.status = OutboxStatus.QUEUED
        message.next_attempt_at = retry_at
        return retry_at
    message.status = OutboxStatus.FAILED
    return None


def backoff(attempts: int) -> timedelta:
    """10 s, 60 s, 5 min... after the 1st, 2nd, 3rd failed attempt."""
    return timedelta(seconds=(10, 60, 300)[min(attempts, 3) - 1])


def apply_delivery_report(session: Session, message_id: int, code: int, now: datetime) -> bool:
    """Apply a Kannel DLR. Reports arrive out of order: `delivered` is final and never undone,
    intermediate codes (buffered, SMSC-accepted) never downgrade a final state. Returns whether
    the message exists."""
    message = session.get(OutboundMessage, message_id, with_for_update=True)
    if message is None:
        return False
    message.dlr_status = code if message.status != OutboxStatus.DELIVERED else message.dlr_status
    if code == DLR_DELIVERED:
        message.status = OutboxStatus.DELIVERED
        message.delivered_at = message.delivered_at or now
    elif code in (DLR_FAILED, DLR_SMSC_REJECTED) and message.status != OutboxStatus.DELIVERED:
        message.status = OutboxStatus.FAILED
        message.last_error = f"delivery report {code}"
    return True


def recoverable(session: Session, now: datetime, grace: timedelta, lease: timedelta) -> Sequence[int]:
    """Ids of messages that should be in a queue but may not be: queued and due for longer than
    `grace`, or claimed longer than `lease` ago by a worker that died. Lost claims are released."""
    session.execute(
        update(OutboundMessage)
        .where(OutboundMessage.status == OutboxStatus.SENDING, OutboundMessage.claimed_at < now - lease)
        .values(status=OutboxStatus.QUEUED, next_attempt_at=now - grace, claimed_at=None)
        .execution_options(synchronize_session=False)
    )
    return session.scalars(
        select(OutboundMessage.id).where(
            OutboundMessage.status == OutboxStatus.QUEUED,
            OutboundMessage.next_attempt_at <= now - grace,
        )
    ).all()
