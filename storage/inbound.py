"""Inbound events: stored raw (encrypted) before the provider gets its 2xx, processed later.

Processing (workers.inbound) takes pending events in batches, one sender's events in order, with
the attempts counted in a transaction of their own; an event that keeps failing is set aside
(`dead_at`, a dead letter) after SIPAS_MAX_EVENT_ATTEMPTS, so it neither retries forever nor holds
back newer events (`sipas dead-letters list|retry|drop`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Text,
    and_,
    bindparam,
    cast,
    func,
    literal,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningInsert

from storage.models import InboundEvent, utcnow


@dataclass(frozen=True)
class Stored:
    event_id: int
    duplicate: bool


@dataclass(frozen=True)
class NewEvent:
    """An event as a webhook hands it over: `payload_enc` already encrypted, the sender only as
    its keyed hash."""

    provider: str
    kind: str
    provider_id: str
    payload_enc: str
    sender_hash: str | None


_UNNESTED = ("provider", "kind", "provider_id", "payload_enc", "sender_hash")
_STORED = (InboundEvent.provider, InboundEvent.provider_id, InboundEvent.id)
_INSERT_ROWS = (
    sqlite.insert(InboundEvent)
    .on_conflict_do_nothing(index_elements=["provider", "provider_id"])
    .returning(*_STORED)
)


def _insert_unnested() -> ReturningInsert[str, str, int]:
    """PostgreSQL: the rows as five arrays, `INSERT … SELECT … FROM unnest(…) WITH ORDINALITY
    ORDER BY ordinality`: ids follow the order given, as with a multi-row VALUES, but the
    statement is short and the same for every group, so neither SQLAlchemy (insertmanyvalues
    rendering) nor psycopg (converting a placeholder per value, uncached for long statements)
    does work per row: those two were 14 % of the web's interpreter time under sms_load
    --acks-only (py-spy --gil)."""
    given = func.unnest(*(cast(bindparam(f"u_{name}"), ARRAY(Text)) for name in _UNNESTED))
    rows = given.table_valued(*_UNNESTED, with_ordinality="n").render_derived()
    now = cast(bindparam("u_now"), InboundEvent.__table__.c.received_at.type)
    chosen = select(*(rows.c[name] for name in _UNNESTED), now, literal(0)).order_by(rows.c.n)
    return (
        postgresql.insert(InboundEvent)
        .from_select([*_UNNESTED, "received_at", "attempts"], chosen)
        .on_conflict_do_nothing(index_elements=["provider", "provider_id"])
        .returning(*_STORED)
    )


_INSERT_UNNESTED = _insert_unnested()


def store_events(session: Session, events: Sequence[NewEvent], now: datetime) -> list[Stored]:
    """Insert every event once per (provider, provider_id) in ONE multi-row
    `INSERT … ON CONFLICT (provider, provider_id) DO NOTHING RETURNING`, then one look-up of the
    ids of the duplicates. Returns one Stored per event, in order: the first of a
    (provider, provider_id) not stored before is new; a provider retry of it (in this group or
    stored earlier, by this or another process) is `duplicate` with the first copy's id. A
    concurrent transaction inserting the same key makes the INSERT wait for it (PostgreSQL's
    speculative insertion), so the look-up afterwards sees its row. Rows go in in the order given
    (ids follow arrival, which keeps one sender's events in order); two transactions inserting the
    same keys in opposite orders can therefore deadlock, and PostgreSQL fails one of them: a
    group of webhooks answered 503 and sent again, nothing lost."""
    first: dict[tuple[str, str], NewEvent] = {}
    for event in events:
        first.setdefault((event.provider, event.provider_id), event)
    if not first:
        return []
    if session.get_bind().dialect.name == "postgresql":
        arrays = {f"u_{name}": [getattr(e, name) for e in first.values()] for name in _UNNESTED}
        result = session.connection().execute(_INSERT_UNNESTED, {**arrays, "u_now": now})
    else:
        rows = [
            {**{name: getattr(e, name) for name in _UNNESTED}, "received_at": now, "attempts": 0}
            for e in first.values()
        ]
        # Core executemany with RETURNING: SQLAlchemy renders it as one multi-row INSERT (its
        # "insertmanyvalues") compiled once and cached.
        result = session.connection().execute(_INSERT_ROWS, rows)
    inserted = {(provider, provider_id): id_ for provider, provider_id, id_ in result}
    existing = _ids_of(session, [key for key in first if key not in inserted])
    results: list[Stored] = []
    new: set[tuple[str, str]] = set()
    for event in events:
        key = (event.provider, event.provider_id)
        if key in inserted and key not in new and first[key] is event:
            new.add(key)
            results.append(Stored(inserted[key], duplicate=False))
        else:
            results.append(Stored(inserted.get(key) or existing[key], duplicate=True))
    return results


def _ids_of(session: Session, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], int]:
    if not keys:
        return {}
    rows = session.execute(
        select(InboundEvent.provider, InboundEvent.provider_id, InboundEvent.id).where(
            tuple_(InboundEvent.provider, InboundEvent.provider_id).in_(keys)
        )
    )
    return {(provider, provider_id): id_ for provider, provider_id, id_ in rows}


def store_event(
    session: Session,
    *,
    provider: str,
    kind: str,
    provider_id: str,
    payload_enc: str,
    sender_hash: str | None,
) -> Stored:
    """One event (store_events of one): a provider retry of the same event finds the first copy
    and reports `duplicate`, so it is neither stored nor processed twice."""
    event = NewEvent(provider, kind, provider_id, payload_enc, sender_hash)
    return store_events(session, [event], utcnow())[0]


# Compiled once (an UPDATE … FROM (VALUES …) was compiled again for every group of reports).
_MARK_PROCESSED = (
    update(InboundEvent)
    .where(InboundEvent.id == bindparam("b_id"))
    .values(
        attempts=InboundEvent.attempts + 1,
        processed_at=bindparam("b_now"),
        result=bindparam("b_result"),
    )
)


def mark_processed(session: Session, results: Sequence[tuple[int, str]], now: datetime) -> None:
    """Close events applied in the transaction that stored them (delivery reports), each with
    what applying it did: `results` is (event id, result) pairs, written by primary key in one
    executemany (psycopg pipelines it: one round trip). These rows were inserted by this
    transaction, so no other transaction holds them."""
    if results:
        session.connection().execute(
            _MARK_PROCESSED,
            [{"b_id": event_id, "b_now": now, "b_result": result} for event_id, result in results],
        )


def lock_unprocessed(session: Session, event_id: int) -> InboundEvent | None:
    """The event, row-locked for this transaction, or None if it is processed or set aside."""
    event = session.get(InboundEvent, event_id, with_for_update=True, populate_existing=True)
    if event is None or event.processed_at is not None or event.dead_at is not None:
        return None
    return event


def _pending() -> ColumnElement[bool]:
    return and_(InboundEvent.processed_at.is_(None), InboundEvent.dead_at.is_(None))


def pending_ids(session: Session, limit: int, exclude: Collection[int] = ()) -> Sequence[int]:
    """The oldest events still to process (neither processed nor set aside), oldest first."""
    query = select(InboundEvent.id).where(_pending()).order_by(InboundEvent.id).limit(limit)
    if exclude:
        query = query.where(InboundEvent.id.not_in(list(exclude)))
    return session.scalars(query).all()


def reload_pending(session: Session, event_ids: Collection[int]) -> Sequence[InboundEvent]:
    """The events of `event_ids` still to process, read again from the database, oldest first.

    A batch reads its events before it holds their senders; by the time it holds one, another
    worker may have applied that sender's events and let go. Reading them again under the hold
    is what keeps an event from being applied twice."""
    if not event_ids:
        return []
    query = (
        select(InboundEvent)
        .where(InboundEvent.id.in_(list(event_ids)), _pending())
        .order_by(InboundEvent.id)
        .execution_options(populate_existing=True)
    )
    return session.scalars(query).all()


def oldest_pending_by_sender(session: Session, sender_hashes: Collection[str]) -> dict[tuple[str, str], int]:
    """(provider, sender_hash) -> id of that sender's oldest event still to process. A batch that
    holds a sender applies its events only from the oldest on, so an event left behind (failed,
    or held by a worker that died) is never overtaken by a later one."""
    if not sender_hashes:
        return {}
    rows = session.execute(
        select(InboundEvent.provider, InboundEvent.sender_hash, func.min(InboundEvent.id))
        .where(_pending(), InboundEvent.sender_hash.in_(list(sender_hashes)))
        .group_by(InboundEvent.provider, InboundEvent.sender_hash)
    ).all()
    return {(provider, sender): oldest for provider, sender, oldest in rows if sender is not None}


def has_pending(session: Session, received_before: datetime) -> bool:
    """Whether an event received before `received_before` still waits (its wake-up was lost)."""
    return (
        session.scalar(
            select(InboundEvent.id).where(_pending(), InboundEvent.received_at <= received_before).limit(1)
        )
        is not None
    )


def count_attempts(session: Session, event_ids: Collection[int], delta: int = 1) -> None:
    """Add `delta` to the events' attempts. The caller commits this on its own, before it
    processes them, so a crash or an error while processing still counts."""
    if event_ids:
        session.execute(
            update(InboundEvent)
            .where(InboundEvent.id.in_(list(event_ids)))
            .values(attempts=InboundEvent.attempts + delta)
            .execution_options(synchronize_session=False)
        )


def record_failure(
    session: Session, event: InboundEvent, error: str, max_attempts: int, now: datetime
) -> bool:
    """Keep why processing failed; after `max_attempts` the event is set aside (dead letter), so
    it stops being retried and stops holding back its sender's later events. Returns whether it
    was set aside."""
    event.last_error = error[:2000]
    if event.attempts >= max_attempts:
        event.dead_at = now
        return True
    return False


def try_lock_senders(session: Session, sender_keys: Collection[str]) -> set[str]:
    """Hold the senders' conversations for this transaction; returns those held (the others are
    held by another transaction: PostgreSQL advisory locks, never waited for, all asked in one
    statement). SQLite serialises writers anyway: every sender is held."""
    keys = sorted(set(sender_keys))
    if session.get_bind().dialect.name != "postgresql" or not keys:
        return set(keys)
    numbers = {int(hashlib.sha256(key.encode()).hexdigest()[:15], 16): key for key in keys}
    wanted = func.unnest(cast(list(numbers), ARRAY(BigInteger))).table_valued("n").render_derived()
    rows = session.execute(select(wanted.c.n, func.pg_try_advisory_xact_lock(wanted.c.n))).all()
    return {numbers[number] for number, held in rows if held}


def dead_letters(session: Session, limit: int = 100) -> Sequence[InboundEvent]:
    return session.scalars(
        select(InboundEvent).where(InboundEvent.dead_at.is_not(None)).order_by(InboundEvent.id).limit(limit)
    ).all()


def retry_dead(session: Session, event_ids: Collection[int] | None) -> int:
    """Give set-aside events (all when `event_ids` is None) a fresh set of attempts."""
    query = update(InboundEvent).where(InboundEvent.dead_at.is_not(None), InboundEvent.processed_at.is_(None))
    if event_ids is not None:
        query = query.where(InboundEvent.id.in_(list(event_ids)))
    result = session.execute(
        query.values(dead_at=None, attempts=0).execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def drop_dead(session: Session, event_ids: Collection[int] | None, now: datetime) -> int:
    """Close set-aside events for good: processed, result says an operator dropped them (the
    stored event stays, for the record, until retention purges it)."""
    query = update(InboundEvent).where(InboundEvent.dead_at.is_not(None), InboundEvent.processed_at.is_(None))
    if event_ids is not None:
        query = query.where(InboundEvent.id.in_(list(event_ids)))
    result = session.execute(
        query.values(processed_at=now, result="dropped by an operator (dead letter)").execution_options(
            synchronize_session=False
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
