"""The inbound drain: turn stored provider events into answers and replies, exactly once, in order.

SMS (MOs of any provider in bot.channels.registry) are handled here; Zalo Bot Platform and OA/ZNS
events by workers.zalo_inbound.

One coalesced RQ job (workers.queues.wake) takes the pending events in batches of
SIPAS_BATCH_SIZE, one transaction per batch. Each event is marked processed in the same
transaction that records its answers, so a batch replayed after a crash finds them processed. A
sender's events are applied in order by one worker at a time: the batch holds each sender's
conversation (a PostgreSQL advisory lock, skipped when another worker holds it), then reads and
locks the active surveys of all its SMS senders in one statement (flows.survey.ActiveSurveys):
the survey row is the only record of a conversation, read once per batch, written with the
step. The attempts are counted in a transaction of their own before the
events are applied, so an event that fails, or crashes the worker, is eventually set aside as a
dead letter instead of being retried forever (storage.inbound).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog
from sqlalchemy.orm import Session

from bot.channels import registry
from flows.inbox import receive as receive_in_inbox
from flows.opt_in import handle_opt_in
from flows.survey import ActiveSurveys, handle_reply, record_opt_out
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
from workers.caps import Caps
from workers.queues import wake, woken
from workers.runtime import Runtime, get_runtime
from workers.zalo_inbound import ZALO_PROVIDERS, process_zalo_event

log = structlog.get_logger(__name__)

# A drain job hands the worker back after about this long, waking a successor if work is left.
DRAIN_BUDGET_SECONDS = 2.0


def drain_inbound() -> dict[str, int]:
    """RQ job (coalesced, workers.queues.wake): process pending events in batches."""
    runtime = get_runtime()
    woken(runtime.redis, "inbound")
    return drain(runtime)


def drain(runtime: Runtime, budget: float = DRAIN_BUDGET_SECONDS) -> dict[str, int]:
    """Work off pending events, a batch per transaction, for about `budget` seconds; then, if
    work is left, wake a successor (so sends and timers queued meanwhile get the worker too)."""
    deadline = time.monotonic() + budget
    passed: set[int] = set()  # failed or held by another worker: not retried in this run
    counts = {"processed": 0, "failed": 0, "dead": 0, "busy": 0}
    while True:
        with runtime.sessions() as session:
            ids = pending_ids(session, runtime.settings.SIPAS_BATCH_SIZE, passed)
        if not ids:
            break
        batch = _process_batch(runtime, ids)
        passed |= batch.failed | batch.busy
        counts["processed"] += batch.processed
        counts["failed"] += len(batch.failed)
        counts["dead"] += batch.dead
        counts["busy"] += len(batch.busy)
        if batch.outbox_ids:
            wake(runtime.redis, "sends")
        if time.monotonic() > deadline:
            with runtime.sessions() as session:
                if pending_ids(session, 1, passed):
                    wake(runtime.redis, "inbound")
            break
    if counts["failed"] or counts["busy"]:
        log.info("inbound drain", **counts)
    return counts


@dataclass
class _Batch:
    processed: int = 0
    dead: int = 0
    failed: set[int] = field(default_factory=set)
    busy: set[int] = field(default_factory=set)
    outbox_ids: list[int] = field(default_factory=list)


def _process_batch(runtime: Runtime, ids: Sequence[int]) -> _Batch:
    """One transaction: hold each sender's conversation (events of a sender another worker holds
    are left to it), count the attempts in a transaction of their own, then apply the events in
    order, each in a savepoint: one that raises is rolled back alone, and its sender's later
    events wait for it (until it succeeds or is set aside)."""
    batch = _Batch()
    now = datetime.now(UTC)
    postgres = runtime.sessions.kw["bind"].dialect.name == "postgresql"
    if not postgres:  # SQLite: the batch holds the one write lock; count before taking it
        _count(runtime, ids, 1)
    with runtime.sessions() as session, session.begin():
        events = reload_pending(session, ids)
        held = try_lock_senders(session, {_sender_key(event) for event in events})
        mine: list[InboundEvent] = []
        for event in events:
            if _sender_key(event) in held:
                mine.append(event)
            else:
                batch.busy.add(event.id)
        mine, behind = _in_turn(session, mine)
        batch.busy.update(behind)
        surveys = _surveys_of(session, mine)
        if surveys.busy:  # a timer or a send holds their survey: their events wait for a later batch
            batch.busy.update(e.id for e in mine if _is_sms(e) and e.sender_hash in surveys.busy)
            mine = [e for e in mine if e.id not in batch.busy]
        if postgres:
            _count(runtime, [event.id for event in mine], 1)
        elif batch.busy:
            count_attempts(session, batch.busy, -1)
        blocked: set[str] = set()
        waiting: list[int] = []
        for event in mine:
            key = _sender_key(event)
            if key in blocked:
                waiting.append(event.id)  # behind a failed event of the same sender
                continue
            event_id = event.id
            try:
                with session.begin_nested():
                    _result, outbox_ids = apply_event(runtime, session, event, now, surveys)
            except Exception as exc:
                batch.failed.add(event_id)
                failed = session.get(InboundEvent, event_id, populate_existing=True)
                assert failed is not None
                error = f"{type(exc).__name__}: {exc}"
                if record_failure(session, failed, error, runtime.settings.SIPAS_MAX_EVENT_ATTEMPTS, now):
                    batch.dead += 1  # set aside: its sender's later events go on
                    log.warning(
                        "inbound event set aside",
                        event_id=event_id,
                        attempts=failed.attempts,
                        error=error[:300],
                    )
                else:
                    blocked.add(key)  # the sender's later events wait for this one
                    log.warning(
                        "inbound event failed", event_id=event_id, attempts=failed.attempts, error=error[:300]
                    )
                continue
            batch.processed += 1
            batch.outbox_ids.extend(outbox_ids)
        if waiting:
            count_attempts(session, waiting, -1)  # not attempted: their count stays as it was
            batch.failed.update(waiting)
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
        return apply_event(runtime, session, event, now, _surveys_of(session, [event], skip_locked=False))


def apply_event(
    runtime: Runtime, session: Session, event: InboundEvent, now: datetime, surveys: ActiveSurveys
) -> tuple[str, list[int]]:
    """What one event does, inside the caller's transaction: answers, replies (outbox ids), or
    nothing but a result; the event is marked processed with it. `surveys` holds the locked
    active SMS survey of the event's sender, if it has one."""
    if event.sender_hash and not Caps(runtime.redis, runtime.settings).inbound_allowed(
        event.sender_hash, now
    ):
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
    outbox_ids = handle_reply(session, survey, sms.text, event.id, now)
    return _finish(event, now, f"survey {survey.id}"), outbox_ids


def _finish(event: InboundEvent, now: datetime, result: str) -> str:
    event.processed_at = now
    event.result = result
    log.info("inbound processed", event_id=event.id, result=result)
    return result
