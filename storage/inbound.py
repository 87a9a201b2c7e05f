"""Inbound events: stored raw (encrypted) before the provider gets its 2xx, processed later."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.models import InboundEvent


@dataclass(frozen=True)
class Stored:
    event_id: int
    duplicate: bool


def store_event(
    session: Session,
    *,
    provider: str,
    kind: str,
    provider_id: str,
    payload_enc: str,
    sender_hash: str | None,
) -> Stored:
    """Insert once per (provider, provider_id). A provider retry of the same event finds the
    first copy and reports `duplicate`, so it is neither stored nor processed twice."""
    existing = session.scalar(
        select(InboundEvent.id).where(
            InboundEvent.provider == provider, InboundEvent.provider_id == provider_id
        )
    )
    if existing is not None:
        return Stored(existing, duplicate=True)
    event = InboundEvent(
        provider=provider,
        kind=kind,
        provider_id=provider_id,
        payload_enc=payload_enc,
        sender_hash=sender_hash,
    )
    try:
        with session.begin_nested():
            session.add(event)
    except IntegrityError:
        winner = session.scalars(
            select(InboundEvent.id).where(
                InboundEvent.provider == provider, InboundEvent.provider_id == provider_id
            )
        ).one()
        return Stored(winner, duplicate=True)
    return Stored(event.id, duplicate=False)


def lock_unprocessed(session: Session, event_id: int) -> InboundEvent | None:
    """The event, row-locked for this transaction, or None if it is already processed."""
    event = session.get(InboundEvent, event_id, with_for_update=True, populate_existing=True)
    if event is None or event.processed_at is not None:
        return None
    return event


def unprocessed(session: Session, now: datetime, grace: timedelta, limit: int = 500) -> Sequence[int]:
    """Events accepted more than `grace` ago and still not processed (their job was lost)."""
    return session.scalars(
        select(InboundEvent.id)
        .where(InboundEvent.processed_at.is_(None), InboundEvent.received_at <= now - grace)
        .order_by(InboundEvent.id)
        .limit(limit)
    ).all()
