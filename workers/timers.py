"""Timers (first message, reminder, expiry) and the sweep that keeps the queues honest.

`sweep` runs every few seconds from `rq cron`. It fires due timers and re-enqueues any stored
work whose job was lost (worker killed, Redis restarted): the database is the list of what must
happen, Redis only carries it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import select, update

from flows.rules import RuleBook
from flows.survey import expire_survey, send_reminder, start_survey
from storage import outbox
from storage.fsm import RedisStateStorage
from storage.inbound import unprocessed
from storage.models import Survey, Timer, TimerKind
from workers.queues import RQDispatcher, queue
from workers.runtime import Runtime, get_runtime
from workers.sending import enqueue_sends

log = structlog.get_logger(__name__)

# A timer's job that has not finished this long after firing is fired again (its job was lost).
TIMER_LEASE = timedelta(minutes=5)


def sweep() -> dict[str, int]:
    """RQ cron job: fire due timers, recover lost sends and unprocessed inbound events."""
    return sweep_once(get_runtime())


def sweep_once(runtime: Runtime, now: datetime | None = None) -> dict[str, int]:
    now = now or datetime.now(UTC)
    q = queue(runtime.redis)
    with runtime.sessions() as session, session.begin():
        due = session.scalars(
            select(Timer.id).where(
                Timer.done_at.is_(None),
                Timer.due_at <= now,
                (Timer.fired_at.is_(None)) | (Timer.fired_at < now - TIMER_LEASE),
            )
        ).all()
        if due:
            session.execute(update(Timer).where(Timer.id.in_(due)).values(fired_at=now))
        grace = timedelta(seconds=runtime.settings.SIPAS_RECOVERY_GRACE)
        unknown = outbox.expire_claims(session, now, timedelta(seconds=runtime.settings.SIPAS_SEND_LEASE))
        lost_sends = outbox.overdue(session, now, grace)
        lost_events = unprocessed(session, now, grace)
    for timer_id in due:
        q.enqueue(run_timer, timer_id, job_id=f"timer-{timer_id}")
    enqueue_sends(runtime, lost_sends)
    dispatcher = RQDispatcher(runtime.redis)
    for event_id in lost_events:
        dispatcher.inbound_received(event_id)
    counts = {
        "timers": len(due),
        "sends_recovered": len(lost_sends),
        "sends_unknown": len(unknown),
        "events_recovered": len(lost_events),
    }
    if unknown:
        log.warning("sends of stopped workers set aside as unknown", message_ids=unknown[:50])
    if lost_sends or lost_events:
        log.warning("sweep recovered lost work", **counts)
    return counts


def run_timer(timer_id: int) -> str:
    """RQ job: carry out one timer (idempotent: a done timer is left alone)."""
    runtime = get_runtime()
    result, outbox_ids = fire(runtime, timer_id)
    enqueue_sends(runtime, outbox_ids)
    return result


def fire(runtime: Runtime, timer_id: int, now: datetime | None = None) -> tuple[str, list[int]]:
    now = now or datetime.now(UTC)
    settings = runtime.settings
    with runtime.sessions() as session, session.begin():
        timer = session.get(Timer, timer_id, with_for_update=True, populate_existing=True)
        if timer is None or timer.done_at is not None:
            return "already done", []
        if timer.kind in (TimerKind.FIRST_MESSAGE, TimerKind.REMINDER):
            survey = session.get(Survey, timer.survey_id)
            rules = RuleBook(session, settings).for_agency_id(survey.agency_id) if survey else None
            if rules is not None and not rules.in_send_window(now):
                # Quiet hours or a holiday (the agency's rules may have changed since the timer
                # was set): wait for the window to open on the next working day.
                timer.due_at = rules.next_send_time(now)
                timer.fired_at = None
                return "deferred to send window", []
        states = RedisStateStorage(runtime.redis)
        if timer.kind is TimerKind.FIRST_MESSAGE:
            outbox_ids = start_survey(session, states, runtime.settings, timer.survey_id, now)
        elif timer.kind is TimerKind.REMINDER:
            outbox_ids = send_reminder(session, runtime.settings, timer.survey_id, now)
        else:
            expire_survey(session, timer.survey_id, now)
            outbox_ids = []
        timer.done_at = now
        return f"{timer.kind.value} done", outbox_ids
