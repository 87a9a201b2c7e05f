"""The inbox: citizens' messages that arrived outside any survey, for the staff of a unit.

Only storage: flows.inbox decides which unit a message belongs to and answers the citizen.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.models import Case, Channel, InboxMessage, InboxStatus

__all__ = ["add", "counts_by_status", "latest_case_agency", "listing", "set_status"]


def latest_case_agency(session: Session, sender_hash: str, channel: Channel = Channel.SMS) -> int | None:
    """The agency of the newest case closed for this number (or Zalo user, by its look-up hash):
    the unit the citizen last dealt with."""
    column = Case.zalo_user_hash if channel is Channel.ZALO else Case.phone_hash
    return session.scalar(
        select(Case.agency_id)
        .where(column == sender_hash)
        .order_by(Case.closed_at.desc(), Case.id.desc())
        .limit(1)
    )


def add(
    session: Session,
    *,
    inbound_event_id: int,
    agency_id: int | None,
    channel: Channel,
    sender_enc: str,
    sender_hash: str,
    text: str,
    received_at: datetime,
) -> tuple[InboxMessage, bool]:
    """Store the message once per inbound event; returns (row, created)."""
    existing = session.scalar(select(InboxMessage).where(InboxMessage.inbound_event_id == inbound_event_id))
    if existing is not None:
        return existing, False
    row = InboxMessage(
        inbound_event_id=inbound_event_id,
        agency_id=agency_id,
        channel=channel,
        sender_enc=sender_enc,
        sender_hash=sender_hash,
        text=text,
        status=InboxStatus.NEW,
        received_at=received_at,
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        winner = session.scalars(
            select(InboxMessage).where(InboxMessage.inbound_event_id == inbound_event_id)
        ).one()
        return winner, False
    return row, True


def listing(
    session: Session,
    agency_ids: Collection[int] | None,
    statuses: Collection[InboxStatus] | None = None,
    *,
    unassigned: bool = False,
    limit: int = 200,
) -> Sequence[InboxMessage]:
    """Newest first: the messages of these agencies (None: every agency), plus those of no known
    unit when `unassigned`."""
    query = select(InboxMessage).order_by(InboxMessage.received_at.desc(), InboxMessage.id.desc())
    if agency_ids is not None:
        scope = InboxMessage.agency_id.in_(list(agency_ids))
        query = query.where(scope | InboxMessage.agency_id.is_(None) if unassigned else scope)
    if statuses:
        query = query.where(InboxMessage.status.in_(list(statuses)))
    return session.scalars(query.limit(limit)).all()


def counts_by_status(session: Session, agency_ids: Collection[int] | None) -> dict[InboxStatus, int]:
    query = select(InboxMessage.status, func.count(InboxMessage.id)).group_by(InboxMessage.status)
    if agency_ids is not None:
        query = query.where(InboxMessage.agency_id.in_(list(agency_ids)))
    return {status: int(n) for status, n in session.execute(query).all()}


def set_status(
    session: Session,
    message: InboxMessage,
    status: InboxStatus,
    *,
    by: str,
    now: datetime,
    forwarded_to: str | None = None,
) -> InboxStatus:
    """Move a message to `status` (read, handled, forwarded); returns the status it had."""
    before = message.status
    message.status = status
    if status in (InboxStatus.HANDLED, InboxStatus.FORWARDED):
        message.handled_at, message.handled_by = now, by
    if forwarded_to is not None:
        message.forwarded_to = forwarded_to
    session.flush()
    return before
