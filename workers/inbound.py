"""The inbound drain: turn stored provider events into answers and replies, exactly once, in order.

SMS (MOs of any provider in bot.channels.registry) are handled here; Zalo Bot Platform and OA/ZNS
events by workers.zalo_inbound.

One coalesced RQ job (workers.queues.wake) takes the pending events in batches of
SIPAS_BATCH_SIZE, one transaction per batch. Each event is marked processed in the same
transaction that records its answers, so a batch replayed after a crash finds them processed. A
sender's events are applied in order by one worker at a time: the batch holds each sender's
conversation (a PostgreSQL advisory lock, skipped when another worker holds it), then reads and
locks the active surveys of all its SMS senders, and their answers so far, in two statements
(flows.survey.ActiveSurveys): the survey row is the only record of a conversation, read once per
batch, written with the step. The batch's rows are written together when it commits: the
replies of all its events in one multi-row INSERT (storage.outbox.write_staged), the answers,
comments and surveys by the ORM's batched flush; the senders' cost-cap counters are counted in
one Redis round trip. The attempts are counted in a transaction of their own before the events
are applied, so an event that fails, or crashes the worker, is eventually set aside as a dead
letter instead of being retried forever (storage.inbound); an event that fails is isolated
without a savepoint per event (_process_batch says how).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from bot.channels import registry
from flows.inbox import receive as receive_in_inbox
from flows.opt_in import handle_opt_in
from flows.survey import ActiveSurveys, handle_reply, record_opt_out
from flows.survey_rows import write_timer_closes
from flows.understanding import Keyword, ReplyKind, parse_reply
from storage.inbound import (
    count_attempts,
    lock_unprocessed,
    oldest_pending_by_sender,
    pending_ids,
    record_failure,
    reload_pending,
    try_lock_senders,
)
from storage.models import Channel, InboundEvent
from storage.outbox import write_staged
from workers.caps import Caps
from workers.draining import DRAIN_BUDGET_SECONDS, drain_batches
from workers.queues import wake, woken
from workers.runtime import Runtime, get_runtime
from workers.zalo_inbound import ZALO_PROVIDERS, process_zalo_event

log = structlog.get_logger(__name__)


def drain_inbound() -> dict[str, int]:
    """RQ job (coalesced, workers.queues.wake): process pending events in batches."""
    runtime = get_runtime()
    woken(runtime.redis, "inbound")
    return drain(runtime)


def drain(runtime: Runtime, budget: float = DRAIN_BUDGET_SECONDS) -> dict[str, int]:
    """Work off pending events, a batch per transaction, for about `budget` seconds
    (workers.draining); events that failed or that another worker holds are not tried again in
    this run."""
    passed: set[int] = set()

    def batch() -> dict[str, int] | None:
        with runtime.sessions() as session:
            ids = pending_ids(session, runtime.settings.SIPAS_BATCH_SIZE, passed)
        if not ids:
            return None
        done = _process_batch(runtime, ids)
        passed.update(done.failed, done.busy)
        if done.processed:
            wake(runtime.redis, "sends")
        return {
            "processed": done.processed,
            "failed": len(done.failed),
            "dead": done.dead,
            "busy": len(done.busy),
        }

    def work_left() -> bool:
        with runtime.sessions() as session:
            return bool(pending_ids(session, 1, passed))

    counts = {"processed": 0, "failed": 0, "dead": 0, "busy": 0}
    counts.update(drain_batches(runtime.redis, "inbound", batch, budget=budget, work_left=work_left))
    if counts["failed"] or counts["busy"]:
        log.info("inbound drain", **counts)
    return counts


@dataclass
class _Batch:
    processed: int = 0
    dead: int = 0
    failed: set[int] = field(default_factory=set)
    busy: set[int] = field(default_factory=set)


class _EventFailedError(Exception):
    """Applying one event of a batch raised: the batch is tried again without it."""

    def __init__(self, event_id: int, error: str) -> None:
        super().__init__(error)
        self.event_id = event_id
        self.error = error


@dataclass
class _Tries:
    """What a batch learnt on its earlier tries, kept while it is tried again."""

    failures: dict[int, str] = field(default_factory=dict)  # event id -> its error
    counted: set[int] = field(default_factory=set)  # events whose attempt is counted
    over_cap: dict[int, bool] = field(default_factory=dict)  # event id -> over its sender's cap
    flush_each: bool = False  # flush after every event, so a failing write names its event


def _process_batch(runtime: Runtime, ids: Sequence[int]) -> _Batch:
    """Apply the events in one transaction, without a savepoint per event: an event whose
    processing raises is isolated by trying the batch again without it (rolled back whole,
    nothing of the failed try stays), its failure recorded in the new try. The batch's rows are
    written together when it ends; when a write fails (the database refused a row: which event
    made it is not known), the batch is tried again writing after every event, so that the
    next failure names its event. The attempts are counted once, before an event's first try, in
    a transaction of their own. A poison event thus costs its batch one or two more tries, never
    its other events."""
    tries = _Tries()
    while True:
        try:
            return _try_batch(runtime, ids, tries)
        except _EventFailedError as failed:
            tries.failures[failed.event_id] = failed.error
        except DBAPIError:
            if tries.flush_each:
                raise
            tries.flush_each = True


def _try_batch(runtime: Runtime, ids: Sequence[int], tries: _Tries) -> _Batch:
    """One try of the batch: hold each sender's conversation (events of a sender another worker
    holds are left to it), then apply the events in order; an event that failed on an earlier
    try is recorded as failed, and its sender's later events wait for it (until it succeeds or
    is set aside)."""
    batch = _Batch()
    now = datetime.now(UTC)
    settings = runtime.settings
    postgres = runtime.sessions.kw["bind"].dialect.name == "postgresql"
    if not postgres:  # SQLite: the batch holds the one write lock; count before taking it
        _count(runtime, [i for i in ids if i not in tries.counted], 1)
        tries.counted.update(ids)
    with runtime.sessions() as session, session.begin():
        events = reload_pending(session, ids)
        held = try_lock_senders(session, {_sender_key(event) for event in events})
        mine = [event for event in events if _sender_key(event) in held]
        batch.busy.update(event.id for event in events if _sender_key(event) not in held)
        mine, behind = _in_turn(session, mine)
        batch.busy.update(behind)
        surveys = _surveys_of(session, mine)
        if surveys.busy:  # a timer or a send holds their survey: their events wait for a later batch
            batch.busy.update(e.id for e in mine if _is_sms(e) and e.sender_hash in surveys.busy)
            mine = [e for e in mine if e.id not in batch.busy]
        if postgres:
            _count(runtime, [e.id for e in mine if e.id not in tries.counted], 1)
            tries.counted.update(e.id for e in mine)
        _check_caps(runtime, mine, now, tries.over_cap)
        blocked: set[str] = set()
        tried: set[int] = set()
        for event in mine:
            key = _sender_key(event)
            if key in blocked:
                continue  # behind a failed event of the same sender: not attempted
            tried.add(event.id)
            if event.id in tries.failures:
                error = tries.failures[event.id]
                batch.failed.add(event.id)
                if record_failure(session, event, error, settings.SIPAS_MAX_EVENT_ATTEMPTS, now):
                    batch.dead += 1  # set aside: its sender's later events go on
                    log.warning(
                        "inbound event set aside",
                        event_id=event.id,
                        attempts=event.attempts,
                        error=error[:300],
                    )
                else:
                    blocked.add(key)  # the sender's later events wait for this one
                    log.warning(
                        "inbound event failed", event_id=event.id, attempts=event.attempts, error=error[:300]
                    )
                continue
            event_id = event.id  # a failed write expires the session's objects: not read after
            try:
                apply_event(runtime, session, event, now, surveys, over_cap=tries.over_cap[event_id])
                if tries.flush_each:
                    session.flush()
                    write_timer_closes(session)
                    write_staged(session)
            except DBAPIError as exc:
                if not tries.flush_each:
                    raise  # may be an earlier event's write, flushed by this one's query: find out
                # The driver's words only: the statement's parameters (a citizen's text) stay out.
                raise _EventFailedError(event_id, f"{type(exc).__name__}: {exc.orig}") from exc
            except Exception as exc:
                raise _EventFailedError(event_id, f"{type(exc).__name__}: {exc}") from exc
            batch.processed += 1
        batch.failed.update(e.id for e in mine if e.id not in tried)  # waiting behind a failure
        # Counted but not attempted (waiting, or left to another worker): the count stays as it was.
        count_attempts(session, tries.counted - tried, -1)
        write_staged(session)
    return batch


def _in_turn(session: Session, held: Sequence[InboundEvent]) -> tuple[list[InboundEvent], set[int]]:
    """Of the events whose senders this batch holds: those still to process, read again now that
    the senders are held (another worker may have applied them meanwhile), and the ids of those
    left for later because an older event of their sender waits outside this batch."""
    fresh = reload_pending(session, [event.id for event in held])
    first: dict[str, int] = {}
    for event in fresh:
        first.setdefault(_sender_key(event), event.id)
    oldest = oldest_pending_by_sender(session, {event.sender_hash for event in fresh if event.sender_hash})
    late = {
        f"{provider}:{sender}"
        for (provider, sender), oldest_id in oldest.items()
        if oldest_id < first.get(f"{provider}:{sender}", oldest_id)
    }
    in_turn = [event for event in fresh if _sender_key(event) not in late]
    return in_turn, {event.id for event in fresh if _sender_key(event) in late}


def _surveys_of(
    session: Session, events: Sequence[InboundEvent], *, skip_locked: bool = True
) -> ActiveSurveys:
    """The active SMS surveys of the events' SMS senders, read and locked in one statement;
    with `skip_locked`, those another transaction holds are left (ActiveSurveys.busy)."""
    senders = {e.sender_hash for e in events if _is_sms(e) and e.sender_hash}
    return ActiveSurveys(session, Channel.SMS, senders, skip_locked=skip_locked)


def _is_sms(event: InboundEvent) -> bool:
    return event.provider not in ZALO_PROVIDERS


def _count(runtime: Runtime, ids: Sequence[int], delta: int) -> None:
    with runtime.sessions() as session, session.begin():
        count_attempts(session, ids, delta)


def _sender_key(event: InboundEvent) -> str:
    """Whose conversation the event belongs to: its sender, or itself when it has none."""
    return f"{event.provider}:{event.sender_hash}" if event.sender_hash else f"event:{event.id}"


def process(runtime: Runtime, event_id: int, now: datetime | None = None) -> tuple[str, list[int]]:
    """Apply one event in its own transaction (tests, reconciliation); the attempt is counted
    first, in a transaction of its own. Returns (what happened, outbox ids to send)."""
    now = now or datetime.now(UTC)
    with runtime.sessions() as session, session.begin():
        if lock_unprocessed(session, event_id) is None:
            return "already processed", []
    _count(runtime, [event_id], 1)
    with runtime.sessions() as session, session.begin():
        event = lock_unprocessed(session, event_id)
        if event is None:
            return "already processed", []
        over_cap: dict[int, bool] = {}
        _check_caps(runtime, [event], now, over_cap)
        surveys = _surveys_of(session, [event], skip_locked=False)
        result, ids = apply_event(runtime, session, event, now, surveys, over_cap=over_cap[event.id])
        return result, [*ids, *write_staged(session)]


def apply_event(
    runtime: Runtime,
    session: Session,
    event: InboundEvent,
    now: datetime,
    surveys: ActiveSurveys,
    *,
    over_cap: bool,
) -> tuple[str, list[int]]:
    """What one event does, inside the caller's transaction: answers, replies, or nothing but a
    result; the event is marked processed with it. `surveys` holds the locked active SMS survey
    of the event's sender, if it has one; `over_cap`: its sender is over its events a minute
    (_check_caps). Returns the result and the ids of messages stored now; a survey's replies are
    staged instead (storage.outbox.stage), for the caller to write."""
    if over_cap:
        return _finish(event, now, "stored, not acted on: sender over its events a minute"), []
    if event.provider in ZALO_PROVIDERS:
        result, outbox_ids = process_zalo_event(runtime, session, event, now)
        return _finish(event, now, result), outbox_ids
    provider = registry.provider(event.provider)
    if provider is None or event.kind != "mo":
        return _finish(event, now, f"ignored {event.provider}/{event.kind}"), []
    sms = provider.parse_stored(runtime.vault.decrypt(event.payload_enc))
    survey = surveys.get(event.sender_hash or "")
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
    handle_reply(session, survey, sms.text, event.id, now)
    return _finish(event, now, f"survey {survey.id}"), []


def _check_caps(
    runtime: Runtime, events: Sequence[InboundEvent], now: datetime, over_cap: dict[int, bool]
) -> None:
    """Count the events not in `over_cap` against their senders' cap (workers.caps: one Redis
    round trip for them all) and note whether each is over it: once per event, however many
    times its batch is tried."""
    new = [event for event in events if event.id not in over_cap]
    over = Caps(runtime.redis, runtime.settings).inbound_over([event.sender_hash for event in new], now)
    over_cap.update({event.id: is_over for event, is_over in zip(new, over, strict=True)})


def _finish(event: InboundEvent, now: datetime, result: str) -> str:
    event.processed_at = now
    event.result = result
    log.info("inbound processed", event_id=event.id, result=result)
    return result
