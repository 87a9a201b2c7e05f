"""Timers (first message, reminder, expiry), their drain, and the sweep that keeps the work moving.

`sweep` runs every few seconds from `rq cron`. It wakes the drain jobs (workers.queues.wake) that
have work in the database: due timers, due sends, inbound events waiting longer than the grace
(their wake-up was lost: worker killed, Redis restarted). The database is the list of what must
happen, Redis only carries the wake-ups.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from flows.survey import expire_survey, send_reminder, start_survey
from flows.survey_rows import lock_surveys, read_refusals, rule_book, write_timer_closes
from storage import outbox
from storage.inbound import has_pending
from storage.models import Survey, Timer, TimerKind
from storage.outbox import write_staged
from workers.draining import DRAIN_BUDGET_SECONDS, drain_batches
from workers.queues import enqueue_due_scheduled, wake, woken
from workers.runtime import Runtime, get_runtime

log = structlog.get_logger(__name__)


def sweep() -> dict[str, int]:
    """RQ cron job: wake the drains that have work, set aside sends of dead workers, move RQ's
    delayed jobs that are due to their queue (workers.queues.enqueue_due_scheduled)."""
    return sweep_once(get_runtime())


def sweep_once(runtime: Runtime, now: datetime | None = None) -> dict[str, int]:
    """Cheap on purpose (three indexed queries, at most three coalesced wake-ups): the drains do
    the work. Two cron processes, or a sweep that runs twice, wake nothing twice: a wake-up is a
    pending drain job or nothing (workers.queues.wake), and timers are taken with row locks."""
    now = now or datetime.now(UTC)
    grace = timedelta(seconds=runtime.settings.SIPAS_RECOVERY_GRACE)
    with runtime.sessions() as session, session.begin():
        expired = outbox.expire_claims(session, now, timedelta(seconds=runtime.settings.SIPAS_SEND_LEASE))
        timers_due = session.scalar(
            select(Timer.id).where(Timer.done_at.is_(None), Timer.due_at <= now).limit(1)
        )
        sends_due = outbox.overdue(session, now, timedelta(0), limit=1)
        events_waiting = has_pending(session, now - grace)
    counts = {
        "scheduled_jobs": enqueue_due_scheduled(runtime.redis, datetime.now(UTC)),
        "timers": int(timers_due is not None and wake(runtime.redis, "timers")),
        "sends": int(bool(sends_due) and wake(runtime.redis, "sends")),
        "events_recovered": int(events_waiting and wake(runtime.redis, "inbound")),
        "sends_unknown": len(expired.unknown),
        "sends_requeued": len(expired.requeued),
    }
    if expired.unknown:
        log.warning("sends of stopped workers set aside as unknown", message_ids=expired.unknown[:50])
    if expired.requeued or expired.failed:
        log.warning(
            "claims of stopped workers whose requests never left",
            requeued=expired.requeued[:50],
            failed=expired.failed[:50],
        )
    if counts["events_recovered"]:
        log.warning("sweep woke the inbound drain for events waiting longer than the grace")
    return counts


def drain_timers() -> dict[str, int]:
    """RQ job (coalesced, workers.queues.wake): carry out every due timer, a batch at a time."""
    runtime = get_runtime()
    woken(runtime.redis, "timers")
    return drain(runtime)


def drain(runtime: Runtime, budget: float = DRAIN_BUDGET_SECONDS) -> dict[str, int]:
    """Due timers in batches (workers.draining), each batch one transaction with the timers
    row-locked (`FOR UPDATE SKIP LOCKED`): two workers, or two cron processes' wake-ups, never
    fire one timer twice, and a timer is marked done in the transaction that does its work. The
    batch locks its timers' surveys in one statement (a survey another transaction holds leaves
    its timer to a later drain) and reads the refusals of their numbers in one more; its
    messages are stored together (storage.outbox.write_staged). No savepoint per timer: a timer
    that raises is left out and the batch tried again without it (retried by a later drain)."""
    passed: set[int] = set()  # failed, or their survey held elsewhere: not tried again in this run
    flush_each = False

    def batch() -> dict[str, int] | None:
        nonlocal flush_each
        while True:
            try:
                return _timer_batch(runtime, passed, flush_each=flush_each)
            except _TimerFailedError as failed:
                log.error(
                    "timer failed; retried by a later drain", timer_id=failed.timer_id, error=failed.error
                )
                passed.add(failed.timer_id)
            except DBAPIError:
                if flush_each:
                    raise
                flush_each = True  # a write the database refused: find which timer made it

    return drain_batches(runtime.redis, "timers", batch, budget=budget)


class _TimerFailedError(Exception):
    """Carrying out one timer of a batch raised: the batch is tried again without it."""

    def __init__(self, timer_id: int, error: str) -> None:
        super().__init__(error)
        self.timer_id = timer_id
        self.error = error


def _timer_batch(runtime: Runtime, passed: set[int], *, flush_each: bool) -> dict[str, int] | None:
    now = datetime.now(UTC)
    counts: dict[str, int] = {}
    with runtime.sessions() as session, session.begin():
        query = (
            select(Timer)
            .where(Timer.done_at.is_(None), Timer.due_at <= now)
            .order_by(Timer.due_at, Timer.id)
            .limit(runtime.settings.SIPAS_BATCH_SIZE)
            .with_for_update(skip_locked=True)
        )
        if passed:
            query = query.where(Timer.id.not_in(list(passed)))
        timers = session.scalars(query).all()
        if not timers:
            return None
        wanted = {timer.survey_id for timer in timers}
        locked = lock_surveys(session, wanted)
        held = (
            set(session.scalars(select(Survey.id).where(Survey.id.in_(wanted - locked))))
            if wanted - locked
            else set()
        )
        busy = {timer.id for timer in timers if timer.survey_id in held}  # another transaction has it
        passed.update(busy)
        read_refusals(
            session,
            [hash_ for survey_id in locked if (hash_ := _phone_hash(session, survey_id)) is not None],
        )
        for timer in timers:
            timer_id = timer.id
            if timer_id in busy:
                continue
            try:
                result = _carry_out(runtime, session, timer, now)
                if flush_each:
                    session.flush()
                    write_timer_closes(session)
                    write_staged(session)
            except DBAPIError as exc:
                if not flush_each:
                    raise
                raise _TimerFailedError(timer_id, f"{type(exc).__name__}: {exc.orig}") from exc
            except Exception as exc:
                raise _TimerFailedError(timer_id, f"{type(exc).__name__}: {exc}") from exc
            counts[result] = counts.get(result, 0) + 1
        write_staged(session)
    if counts:
        wake(runtime.redis, "sends")
    if busy:
        counts["survey busy, left for later"] = len(busy)
    return counts


def _phone_hash(session: Session, survey_id: int) -> str | None:
    survey = session.get(Survey, survey_id)  # locked and loaded with its case by lock_surveys
    return (survey.phone_hash or survey.case.phone_hash) if survey is not None else None


def fire(runtime: Runtime, timer_id: int, now: datetime | None = None) -> tuple[str, list[int]]:
    """Carry out one timer in its own transaction (tests); (what happened, outbox ids)."""
    now = now or datetime.now(UTC)
    with runtime.sessions() as session, session.begin():
        timer = session.get(Timer, timer_id, with_for_update=True, populate_existing=True)
        if timer is None or timer.done_at is not None:
            return "already done", []
        result = _carry_out(runtime, session, timer, now)
        return result, write_staged(session)


def _carry_out(runtime: Runtime, session: Session, timer: Timer, now: datetime) -> str:
    """The timer's work in the caller's transaction; the timer is done (or moved) with it. Its
    messages are staged (storage.outbox.stage) or, for a reminder, stored."""
    settings = runtime.settings
    if timer.kind in (TimerKind.FIRST_MESSAGE, TimerKind.REMINDER):
        survey = session.get(Survey, timer.survey_id)
        rules = rule_book(session, settings).for_agency_id(survey.agency_id) if survey else None
        if rules is not None and not rules.in_send_window(now):
            # Quiet hours or a holiday (the agency's rules may have changed since the timer
            # was set): wait for the window to open on the next working day.
            timer.due_at = rules.next_send_time(now)
            return "deferred to send window"
    if timer.kind is TimerKind.FIRST_MESSAGE:
        start_survey(session, runtime.settings, timer.survey_id, now)
    elif timer.kind is TimerKind.REMINDER:
        send_reminder(session, runtime.settings, timer.survey_id, now)
    else:
        expire_survey(session, timer.survey_id, now)
    timer.fired_at = timer.done_at = now
    return f"{timer.kind.value} done"
