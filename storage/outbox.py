"""The outbox: every message is stored before it is sent, then claimed, sent and settled.

A message moves queued → sending → sent → delivered, or ends failed. Three rules keep a citizen
from ever getting the same message twice (and the agency from paying twice):

- Attempts are capped everywhere: a row is claimed only while `attempts < MAX_ATTEMPTS`, whoever
  claims it (a drain job, a recovered claim, an operator's resend).
- A claim whose outcome is unknown is never sent again by itself. Just before a batch's HTTP
  calls the sender marks its rows in flight (`requested_at`, one committed UPDATE:
  `mark_requested`). A worker that dies after that leaves rows `sending` whose request may have
  reached the gateway: after the lease (SIPAS_SEND_LEASE, longer than the HTTP timeout) the sweep
  moves them to `unknown`, as does a send whose answer was lost (read timeout, connection dropped
  after the request went out). A worker that dies between the claim and that mark sent nothing:
  its expired claims are queued again (attempts stay counted and capped). An `unknown` row is
  settled by the gateway's delivery report (Kannel's names the row; a Zalo receipt for a message
  id we never learnt settles the one unknown OA or ZNS row it can be about:
  `settle_zalo_receipt`) or by an operator (`sipas outbox resolve ID --sent|--resend`).
- Every settlement is conditional on the claim token: a late worker's `mark_sent` never
  overwrites a newer claim, and never downgrades a delivery report that arrived first.

Every statement that may wait for the locks of several rows takes them in one global order,
ascending id (`_locked_in_id_order`): a group of delivery reports (apply_delivery_reports) and
the send drain settling its batch (mark_requested, mark_sent, release) share rows, and two
transactions that lock their common rows in the same order cannot deadlock; each of those
transactions locks its rows in one statement. claim_due never waits (SKIP LOCKED) and
mark_attempt_failed locks one row.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    CTE,
    ColumnElement,
    Integer,
    String,
    Text,
    bindparam,
    case,
    column,
    event,
    or_,
    select,
    update,
    values,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, SessionTransaction

from storage.crypto import PhoneVault
from storage.models import Channel, OutboundMessage, OutboxStatus, Route

MAX_ATTEMPTS = 3


class Delivery(enum.IntEnum):
    """What a delivery report says, whatever the provider: each channel package maps its own
    codes onto these (bot/channels/<provider>/), so the outbox never learns a gateway's codes.
    Stored in OutboundMessage.dlr_status; the provider's own code goes into last_error when it
    explains a failure. (Rows settled before this existed hold Kannel's raw %d code there.)"""

    DELIVERED = 1  # on the phone: final
    FAILED = 2  # will not reach the phone (rejected, expired, undeliverable)
    ACCEPTED = 3  # the provider or the operator holds it, no outcome yet (buffered, en route)


_IN_FLIGHT = (OutboxStatus.SENDING, OutboxStatus.UNKNOWN)


@dataclass(frozen=True)
class NewMessage:
    """A message to store, once per `dedupe_key` (a stable name of what it is, e.g.
    `survey:12:in:345:0`: a step recomputed after a rollback names its messages the same)."""

    dedupe_key: str
    channel: Channel
    recipient_enc: str
    text: str
    survey_id: int | None = None
    not_before: datetime | None = None
    route: Route | None = None
    payload: dict[str, Any] | None = None


def add_messages(session: Session, messages: Sequence[NewMessage]) -> list[int]:
    """Store each message once per dedupe key, all in one multi-row `INSERT ... ON CONFLICT
    (dedupe_key) DO NOTHING`: a key stored before (by this transaction or a committed one) keeps
    its row. Returns the ids in the order given, a row stored before included."""
    if not messages:
        return []
    rows = [
        {
            "dedupe_key": m.dedupe_key,
            "channel": m.channel,
            "recipient_enc": m.recipient_enc,
            "text": m.text,
            "survey_id": m.survey_id,
            "route": m.route,
            "payload": m.payload,
            "status": OutboxStatus.QUEUED,
            **({"next_attempt_at": m.not_before} if m.not_before is not None else {}),
        }
        for m in messages
    ]
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    ids: dict[str, int] = {}
    # Compiled once (SQLAlchemy's insertmanyvalues renders the rows into the cached statement):
    # `.values(rows)` compiled a new statement for every batch.
    statement = (
        insert(OutboundMessage)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(OutboundMessage.dedupe_key, OutboundMessage.id)
    )
    # One executemany per set of columns (a row without `not_before` takes the column's default).
    for columns in {tuple(sorted(row)) for row in rows}:
        same = [row for row in rows if tuple(sorted(row)) == columns]
        ids.update({key: row_id for key, row_id in session.connection().execute(statement, same)})
    missing = [m.dedupe_key for m in messages if m.dedupe_key not in ids]
    if missing:  # stored before: their rows stand
        stored = select(OutboundMessage.dedupe_key, OutboundMessage.id)
        found = session.execute(stored.where(OutboundMessage.dedupe_key.in_(missing)))
        ids.update({key: row_id for key, row_id in found})
    return [ids[m.dedupe_key] for m in messages]


def add_message(session: Session, **fields: Any) -> OutboundMessage:
    """Store one message now (add_messages) and return its row: for the paths that send one
    message and need it; a batch stages its messages instead (`stage`)."""
    [message_id] = add_messages(session, [NewMessage(**fields)])
    message = session.get(OutboundMessage, message_id)
    assert message is not None
    return message


_STAGED = "sipas_outbox_staged"
_MARKS = "sipas_outbox_savepoints"  # savepoint -> how many messages were staged when it began


def stage(session: Session, messages: Sequence[NewMessage]) -> None:
    """Keep `messages` to be stored by `write_staged`, so that a batch of conversation steps
    stores all its messages in one statement. Staged messages belong to the transaction: a
    rollback forgets them, and a commit writes any left (nothing staged is ever lost)."""
    session.info.setdefault(_STAGED, []).extend(messages)


def write_staged(session: Session) -> list[int]:
    """Store every message staged in this session (add_messages); their ids, in staging order."""
    staged: list[NewMessage] = session.info.pop(_STAGED, [])
    return add_messages(session, staged)


@event.listens_for(Session, "before_commit")
def _write_before_commit(session: Session) -> None:
    if not session.in_nested_transaction():  # the transaction's commit, not a savepoint's
        write_staged(session)


@event.listens_for(Session, "after_transaction_create")
def _mark_savepoint(session: Session, transaction: SessionTransaction) -> None:
    if transaction.nested:  # a savepoint rolled back takes back what was staged inside it
        session.info.setdefault(_MARKS, {})[id(transaction)] = len(session.info.get(_STAGED, ()))


@event.listens_for(Session, "after_soft_rollback")
def _unstage_rolled_back(session: Session, previous: SessionTransaction) -> None:
    mark = session.info.get(_MARKS, {}).pop(id(previous), None)
    if previous.nested and mark is not None:
        del session.info.get(_STAGED, [])[mark:]


@event.listens_for(Session, "after_transaction_end")
def _forget_after_transaction(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the outermost transaction: committed (written) or rolled back
        session.info.pop(_STAGED, None)
        session.info.pop(_MARKS, None)


@dataclass(frozen=True)
class Claim:
    """A claimed row as the sender needs it, detached from the session that claimed it."""

    id: int
    token: str
    attempts: int
    survey_id: int | None
    channel: Channel
    route: Route | None
    recipient_enc: str
    text: str
    payload: dict[str, Any] | None


def _locked_in_id_order(*where: ColumnElement[bool]) -> CTE:
    """The ids of the rows matching `where`, locked (`FOR UPDATE`) in ascending id order: the
    global order of every statement that waits for several outbox rows (module doc). Joined as a
    MATERIALIZED CTE: PostgreSQL locks its rows as its ORDER BY emits them, once each, and the
    outer UPDATE reaches a row only after the CTE emitted (locked) it, so the statement waits
    for its rows in id order whatever its join plan. (As an `IN (subquery)` the planner may
    rescan the locking subquery once per outer row. SQLite has no row locks: it serialises
    writers.)"""
    return (
        select(OutboundMessage.id)
        .where(*where)
        .order_by(OutboundMessage.id)
        .with_for_update()
        .cte("locked")
        .prefix_with("MATERIALIZED")
    )


def claim_due(session: Session, now: datetime, limit: int, ids: Sequence[int] | None = None) -> list[Claim]:
    """Take up to `limit` due messages for sending (attempts + 1), oldest first; `ids` restricts
    the choice. Rows another transaction holds (claiming, settling, applying a report) are
    skipped (`FOR UPDATE SKIP LOCKED` on PostgreSQL): competing workers split the work instead of
    waiting for each other, and a claim never waits, so its lock order (due time) cannot make a
    deadlock."""
    token = uuid.uuid4().hex
    due = (
        select(OutboundMessage.id)
        .where(
            OutboundMessage.status == OutboxStatus.QUEUED,
            OutboundMessage.next_attempt_at <= now,
            OutboundMessage.attempts < MAX_ATTEMPTS,
        )
        .order_by(OutboundMessage.next_attempt_at, OutboundMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if ids is not None:
        due = due.where(OutboundMessage.id.in_(list(ids)))
    session.execute(
        update(OutboundMessage)
        .where(OutboundMessage.id.in_(due.scalar_subquery()), OutboundMessage.status == OutboxStatus.QUEUED)
        .values(
            status=OutboxStatus.SENDING,
            attempts=OutboundMessage.attempts + 1,
            claimed_at=now,
            claim_token=token,
            requested_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    rows = session.execute(
        select(
            OutboundMessage.id,
            OutboundMessage.attempts,
            OutboundMessage.survey_id,
            OutboundMessage.channel,
            OutboundMessage.route,
            OutboundMessage.recipient_enc,
            OutboundMessage.text,
            OutboundMessage.payload,
        )
        .where(OutboundMessage.claim_token == token, OutboundMessage.status == OutboxStatus.SENDING)
        .order_by(OutboundMessage.id)
    ).all()
    return [Claim(r[0], token, r[1], r[2], r[3], r[4], r[5], r[6], r[7]) for r in rows]


def mark_requested(session: Session, token: str, message_ids: Sequence[int], now: datetime) -> None:
    """These rows of claim `token` are about to be sent: from now on a worker that dies leaves
    them `unknown`, never queued again. Commit before the first HTTP call."""
    if message_ids:
        session.execute(
            update(OutboundMessage)
            .where(
                OutboundMessage.id == _locked_in_id_order(OutboundMessage.id.in_(list(message_ids))).c.id,
                OutboundMessage.claim_token == token,
                OutboundMessage.status == OutboxStatus.SENDING,
            )
            .values(requested_at=now)
            .execution_options(synchronize_session=False)
        )


@dataclass(frozen=True)
class SentRow:
    """What the gateway said when it took a message."""

    message_id: int
    provider_id: str
    segments: int
    coding: str


def mark_sent(session: Session, token: str, sent: Sequence[SentRow], now: datetime) -> list[int]:
    """The gateway took these messages under claim `token`: all settled in one statement. A row
    whose claim is no longer ours (an operator resent it) is left alone; a delivery report that
    came first is never downgraded. Returns the ids that were ours."""
    if not sent:
        return []
    rows = (
        values(
            column("message_id", Integer),
            column("provider_id", String),
            column("segments", Integer),
            column("coding", String),
            name="sent",
        )
        .data([(row.message_id, row.provider_id, row.segments, row.coding) for row in sent])
        .cte("sent")
    )
    locked = _locked_in_id_order(OutboundMessage.id.in_([row.message_id for row in sent]))
    settled = (
        update(OutboundMessage)
        .where(
            OutboundMessage.id == rows.c.message_id,
            OutboundMessage.id == locked.c.id,
            OutboundMessage.claim_token == token,
        )
        .values(
            status=case(
                (OutboundMessage.status.in_(_IN_FLIGHT), OutboxStatus.SENT.value),
                else_=OutboundMessage.status,
            ),
            provider_id=rows.c.provider_id,
            segments=rows.c.segments,
            coding=rows.c.coding,
            sent_at=now,
            last_error=None,
        )
        .returning(OutboundMessage.id)
        .execution_options(synchronize_session=False)
    )
    return sorted(session.scalars(settled).all())


@dataclass(frozen=True)
class Failure:
    """What the outbox did with a failed attempt."""

    outcome: str  # "retry", "failed", "unknown", or "stale" (the claim was no longer ours)
    attempts: int
    retry_at: datetime | None = None


def mark_attempt_failed(
    session: Session,
    message_id: int,
    token: str,
    *,
    error: str,
    retryable: bool,
    now: datetime,
    ambiguous: bool = False,
    retry_after: float | None = None,
) -> Failure:
    """Record a failed attempt under claim `token`: retried later (capped, backed off, never
    sooner than the provider's Retry-After), given up, or, when the gateway may have taken it
    (`ambiguous`), set aside as `unknown` for a delivery report or an operator to settle."""
    message = session.get(OutboundMessage, message_id, with_for_update=True, populate_existing=True)
    if message is None or message.claim_token != token or message.status is not OutboxStatus.SENDING:
        return Failure("stale", message.attempts if message else 0)
    message.last_error = error[:2000]
    if ambiguous:
        message.status = OutboxStatus.UNKNOWN
        return Failure("unknown", message.attempts)
    if retryable and message.attempts < MAX_ATTEMPTS:
        retry_at = retry_time(message.attempts, now, retry_after)
        message.status = OutboxStatus.QUEUED
        message.next_attempt_at = retry_at
        message.claim_token = None
        message.requested_at = None
        return Failure("retry", message.attempts, retry_at)
    message.status = OutboxStatus.FAILED
    return Failure("failed", message.attempts)


def retry_time(attempts: int, now: datetime, retry_after: float | None) -> datetime:
    """When a row that failed its `attempts`-th attempt is tried again: backed off, never sooner
    than the provider's Retry-After."""
    retry_at = now + backoff(attempts)
    if retry_after is not None:
        retry_at = max(retry_at, now + timedelta(seconds=retry_after))
    return retry_at


@dataclass(frozen=True)
class Release:
    """A claimed row to put back in the queue untried: due again at `not_before`, and why."""

    message_id: int
    not_before: datetime
    reason: str


def release(session: Session, token: str, rows: Sequence[Release]) -> list[int]:
    """Rows claimed under `token` but never tried (held behind an earlier message to the same
    recipient that was not sent): back to the queue in one statement, their attempt not counted,
    each due at its `not_before`. Returns the ids whose claim was still ours."""
    if not rows:
        return []
    held = (
        values(
            column("message_id", Integer),
            column("not_before", OutboundMessage.__table__.c.next_attempt_at.type),
            column("reason", Text),
            name="held",
        )
        .data([(row.message_id, row.not_before, row.reason[:2000]) for row in rows])
        .cte("held")
    )
    locked = _locked_in_id_order(OutboundMessage.id.in_([row.message_id for row in rows]))
    released = (
        update(OutboundMessage)
        .where(
            OutboundMessage.id == held.c.message_id,
            OutboundMessage.id == locked.c.id,
            OutboundMessage.claim_token == token,
            OutboundMessage.status == OutboxStatus.SENDING,
        )
        .values(
            status=OutboxStatus.QUEUED,
            attempts=OutboundMessage.attempts - 1,
            claim_token=None,
            requested_at=None,
            next_attempt_at=held.c.not_before,
            last_error=held.c.reason,
        )
        .returning(OutboundMessage.id)
        .execution_options(synchronize_session=False)
    )
    return sorted(session.scalars(released).all())


def waiting_behind(session: Session, claims: Sequence[Claim], now: datetime) -> dict[int, datetime]:
    """Claims that must not be sent yet because an older message of the same survey is not sent
    either: queued for a retry after a refusal (wait for it), or being sent by another worker
    (wait a second). Sending now would overtake it. For each, when to try again."""
    surveys = {claim.survey_id for claim in claims if claim.survey_id is not None}
    if not surveys:
        return {}
    ours = {claim.token for claim in claims}
    unsent = session.execute(
        select(
            OutboundMessage.survey_id,
            OutboundMessage.id,
            OutboundMessage.status,
            OutboundMessage.claim_token,
            OutboundMessage.next_attempt_at,
        ).where(
            OutboundMessage.survey_id.in_(surveys),
            OutboundMessage.status.in_([OutboxStatus.QUEUED, OutboxStatus.SENDING]),
        )
    ).all()
    by_survey: dict[int, list[tuple[int, datetime]]] = {}
    for survey_id, row_id, status, token, due in unsent:
        if survey_id is None or (status is OutboxStatus.SENDING and token in ours):
            continue  # this batch's own claim: sent in order with it
        wait_until = due if status is OutboxStatus.QUEUED else now + timedelta(seconds=1)
        by_survey.setdefault(survey_id, []).append((row_id, wait_until))
    waiting: dict[int, datetime] = {}
    for claim in claims:
        dues = [due for row_id, due in by_survey.get(claim.survey_id or 0, ()) if row_id < claim.id]
        if claim.survey_id is not None and dues:
            waiting[claim.id] = max(dues)
    return waiting


def backoff(attempts: int) -> timedelta:
    """10 s, 60 s, 5 min... after the 1st, 2nd, 3rd failed attempt."""
    return timedelta(seconds=(10, 60, 300)[min(attempts, 3) - 1])


@dataclass(frozen=True)
class Report:
    """A delivery report as the outbox applies it: the row it names and what it says."""

    message_id: int
    status: Delivery
    detail: str = ""  # the provider's own words for a failure


@dataclass(frozen=True)
class _Reported:
    """The columns a delivery report reads and writes."""

    status: OutboxStatus
    dlr_status: int | None
    delivered_at: datetime | None
    sent_at: datetime | None
    last_error: str | None


def _applied(row: _Reported, report: Report, now: datetime) -> _Reported:
    """Reports arrive out of order: `delivered` is final and never undone, `accepted` never
    downgrades a final state, and any report settles a row whose outcome was unknown (the
    gateway did take it)."""
    dlr_status = row.dlr_status if row.status is OutboxStatus.DELIVERED else int(report.status)
    if report.status is Delivery.DELIVERED:
        return _Reported(
            OutboxStatus.DELIVERED, dlr_status, row.delivered_at or now, row.sent_at, row.last_error
        )
    if report.status is Delivery.FAILED and row.status is not OutboxStatus.DELIVERED:
        error = f"delivery report: {report.detail or 'failed'}"[:2000]
        return _Reported(OutboxStatus.FAILED, dlr_status, row.delivered_at, row.sent_at, error)
    if row.status is OutboxStatus.UNKNOWN:
        return _Reported(OutboxStatus.SENT, dlr_status, row.delivered_at, row.sent_at or now, row.last_error)
    return _Reported(row.status, dlr_status, row.delivered_at, row.sent_at, row.last_error)


# The rows reports changed, written by primary key as one executemany (psycopg pipelines it:
# one round trip). Compiled once: an UPDATE … FROM (VALUES …) was compiled again for every group,
# its rows being part of the statement (a tenth of the web's time, py-spy).
_WRITE_REPORTED = (
    update(OutboundMessage)
    .where(OutboundMessage.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        dlr_status=bindparam("b_dlr_status"),
        delivered_at=bindparam("b_delivered_at"),
        sent_at=bindparam("b_sent_at"),
        last_error=bindparam("b_last_error"),
    )
)


def apply_delivery_reports(session: Session, reports: Sequence[Report], now: datetime) -> list[bool]:
    """Apply delivery reports (those of concurrent webhooks, in arrival order; one row may have
    several) in two statements: the rows named locked in id order and read
    (`SELECT … ORDER BY id FOR UPDATE`: the global lock order, module doc), the reports applied
    in memory one after the other (`_applied`), the rows they changed written by primary key
    in one executemany. `detail` (the provider's words for a failure) goes into
    last_error. Returns, per report, whether its message exists."""
    if not reports:
        return []
    locked = session.execute(
        select(
            OutboundMessage.id,
            OutboundMessage.status,
            OutboundMessage.dlr_status,
            OutboundMessage.delivered_at,
            OutboundMessage.sent_at,
            OutboundMessage.last_error,
        )
        .where(OutboundMessage.id.in_(sorted({report.message_id for report in reports})))
        .order_by(OutboundMessage.id)
        .with_for_update()
    ).all()
    before = {row[0]: _Reported(*row[1:]) for row in locked}
    after = dict(before)
    for report in reports:
        if report.message_id in after:
            after[report.message_id] = _applied(after[report.message_id], report, now)
    changed = [(row_id, row) for row_id, row in after.items() if row != before[row_id]]
    if changed:
        rows = [
            {
                "b_id": row_id,
                "b_status": row.status,
                "b_dlr_status": row.dlr_status,
                "b_delivered_at": row.delivered_at,
                "b_sent_at": row.sent_at,
                "b_last_error": row.last_error,
            }
            for row_id, row in changed
        ]
        session.connection().execute(_WRITE_REPORTED, rows)
    return [report.message_id in before for report in reports]


def settle_zalo_receipt(
    session: Session,
    vault: PhoneVault,
    *,
    msg_id: str,
    user_id: str | None,
    tracking_id: str | None,
    now: datetime,
) -> int | None:
    """Zalo's `user_received_message` for a message id no row holds: the answer to one of our
    sends was lost, yet Zalo delivered it. A ZNS row is found by its tracking id (our survey id),
    an OA row by its recipient. Only when exactly one `unknown` row fits is it settled
    (delivered, with Zalo's id); with two or more the receipt cannot say which one arrived and an
    operator decides. Only that row is locked (and checked again under the lock). Returns the
    settled row's id."""
    fitting: list[ColumnElement[bool]] = []
    if user_id:
        fitting.append(or_(OutboundMessage.route == Route.ZALO_OA, OutboundMessage.route.is_(None)))
    if tracking_id:
        fitting.append(OutboundMessage.route == Route.ZNS)
    if not fitting:
        return None
    candidates = session.execute(
        select(
            OutboundMessage.id,
            OutboundMessage.route,
            OutboundMessage.payload,
            OutboundMessage.survey_id,
            OutboundMessage.recipient_enc,
        ).where(
            OutboundMessage.channel == Channel.ZALO,
            OutboundMessage.status == OutboxStatus.UNKNOWN,
            or_(*fitting),
        )
    ).all()
    fits = [
        row_id
        for row_id, route, payload, survey_id, recipient_enc in candidates
        if (
            route is Route.ZNS
            and str((payload or {}).get("tracking_id") or survey_id or row_id) == tracking_id
        )
        or (route is not Route.ZNS and user_id and vault.decrypt(recipient_enc) == user_id)
    ]
    if len(fits) != 1:
        return None
    row = session.get(OutboundMessage, fits[0], with_for_update=True, populate_existing=True)
    if row is None or row.status is not OutboxStatus.UNKNOWN:
        return None  # settled meanwhile
    row.status = OutboxStatus.DELIVERED
    row.provider_id = msg_id
    row.sent_at = row.sent_at or now
    row.delivered_at = now
    row.last_error = f"{row.last_error or ''} (settled by Zalo's delivery receipt)"[:2000]
    return row.id


@dataclass(frozen=True)
class Expired:
    """What the sweep did with the claims of workers that stopped."""

    unknown: list[int]  # the request may have left: kept for a report or an operator
    requeued: list[int]  # the request never left: queued to be sent again
    failed: list[int]  # never left, but the attempts ran out


def expire_claims(session: Session, now: datetime, lease: timedelta) -> Expired:
    """Claims older than `lease` belong to a worker that stopped. Those whose request may have
    left (`requested_at` set) become `unknown`, never queued again by themselves; those whose
    request never left are queued again at once, or failed when their attempts ran out. One
    statement, its rows locked in id order (a late delivery report may hold one of them)."""
    stale = (OutboundMessage.status == OutboxStatus.SENDING, OutboundMessage.claimed_at < now - lease)
    sent = OutboundMessage.requested_at.is_not(None)
    retry = OutboundMessage.attempts < MAX_ATTEMPTS
    moved = session.execute(
        update(OutboundMessage)
        .where(OutboundMessage.id == _locked_in_id_order(*stale).c.id, *stale)
        .values(
            status=case(
                (sent, OutboxStatus.UNKNOWN.value),
                (retry, OutboxStatus.QUEUED.value),
                else_=OutboxStatus.FAILED.value,
            ),
            claim_token=case(
                (sent, OutboundMessage.claim_token), (retry, None), else_=OutboundMessage.claim_token
            ),
            next_attempt_at=case(
                (sent, OutboundMessage.next_attempt_at), (retry, now), else_=OutboundMessage.next_attempt_at
            ),
            last_error=case(
                (sent, "claim expired: the worker stopped during the send, outcome unknown"),
                (retry, "claim expired before the request left: sent again"),
                else_="claim expired before the request left, attempts exhausted",
            ),
        )
        .returning(OutboundMessage.id, OutboundMessage.status)
        .execution_options(synchronize_session=False)
    ).all()
    by_status: dict[OutboxStatus, list[int]] = {}
    for row_id, status in sorted(moved):
        by_status.setdefault(OutboxStatus(status), []).append(row_id)
    return Expired(
        by_status.get(OutboxStatus.UNKNOWN, []),
        by_status.get(OutboxStatus.QUEUED, []),
        by_status.get(OutboxStatus.FAILED, []),
    )


def overdue(session: Session, now: datetime, grace: timedelta, limit: int = 500) -> Sequence[int]:
    """Ids of messages due for longer than `grace` with attempts left (their job was lost)."""
    return session.scalars(
        select(OutboundMessage.id)
        .where(
            OutboundMessage.status == OutboxStatus.QUEUED,
            OutboundMessage.next_attempt_at <= now - grace,
            OutboundMessage.attempts < MAX_ATTEMPTS,
        )
        .order_by(OutboundMessage.id)
        .limit(limit)
    ).all()


def next_due_at(session: Session) -> datetime | None:
    """When the next queued message becomes due (a drain job schedules itself for then)."""
    return session.scalar(
        select(OutboundMessage.next_attempt_at)
        .where(OutboundMessage.status == OutboxStatus.QUEUED, OutboundMessage.attempts < MAX_ATTEMPTS)
        .order_by(OutboundMessage.next_attempt_at)
        .limit(1)
    )


def unreported(session: Session, claimed_before: datetime) -> Sequence[int]:
    """`unknown` messages claimed before `claimed_before` that no delivery report ever mentioned:
    with a gateway that reports every message it takes (Kannel with our dlr-mask), these almost
    surely never reached it. For an operator to resend, never resent by themselves."""
    return session.scalars(
        select(OutboundMessage.id)
        .where(
            OutboundMessage.status == OutboxStatus.UNKNOWN,
            OutboundMessage.dlr_status.is_(None),
            OutboundMessage.claimed_at < claimed_before,
        )
        .order_by(OutboundMessage.id)
    ).all()


class NotResolvableError(ValueError):
    """The operator asked to resolve a message that is not waiting for a decision."""


def resolve(session: Session, message_id: int, *, sent: bool, now: datetime) -> OutboundMessage:
    """An operator's decision on an `unknown` message: it was sent (checked at the gateway or with
    the citizen), or it must be sent again: then once more only (attempts stay capped)."""
    message = session.get(OutboundMessage, message_id, with_for_update=True)
    if message is None:
        raise NotResolvableError(f"no message {message_id}")
    if message.status is not OutboxStatus.UNKNOWN:
        raise NotResolvableError(f"message {message_id} is {message.status.value}, not unknown")
    message.claim_token = None
    message.requested_at = None
    if sent:
        message.status = OutboxStatus.SENT
        message.sent_at = message.sent_at or now
        message.last_error = None
    else:
        message.status = OutboxStatus.QUEUED
        message.attempts = min(message.attempts, MAX_ATTEMPTS - 1)
        message.next_attempt_at = now
        message.last_error = "resent by an operator"
    return message
