"""The timer jobs and the sweep, driven as `rq cron` and the worker drive them, on a real database
and a real Redis: first message, reminder, expiry, quiet hours, and recovery of lost jobs."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from redis import Redis
from rq import Queue
from sqlalchemy import func, select

from config.settings import Settings
from flows.intake import submit_cases
from storage.inbound import store_event
from storage.models import (
    Agency,
    AgencyLevel,
    OutboundMessage,
    OutboxStatus,
    Survey,
    SurveyStatus,
    Timer,
    TimerKind,
)
from workers.queues import DEFAULT_QUEUE, RQDispatcher
from workers.runtime import Runtime
from workers.timers import drain, fire, sweep_once

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
# 10:00 local: inside the 07:30-21:00 window.
MORNING = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)


@pytest.fixture
def runtime(settings: Settings, redis: Redis) -> Runtime:
    windowed = settings.model_copy(update={"SIPAS_SEND_WINDOW": "07:30-21:00"})
    built = Runtime.build(windowed)
    with built.sessions() as session, session.begin():
        session.add(Agency(code="W", name="UBND phường Hạ Đình", level=AgencyLevel.COMMUNE))
    return built


def _schedule(runtime: Runtime, closed_at: datetime, phone: str = "0912345678") -> int:
    case = {"case_id": f"C-{phone}", "agency_code": "W", "procedure_code": "1.001612", "phone": phone,
            "closed_at": closed_at.isoformat()}  # fmt: skip
    with runtime.sessions() as session, session.begin():
        [outcome] = submit_cases(session, runtime.vault, runtime.settings, [case], closed_at)
    assert outcome.outcome.value == "scheduled"
    assert outcome.survey_id is not None
    return outcome.survey_id


def _timer(runtime: Runtime, survey_id: int, kind: TimerKind) -> Timer:
    with runtime.sessions() as session:
        return session.scalars(select(Timer).where(Timer.survey_id == survey_id, Timer.kind == kind)).one()


def _queued_job_ids(redis: Redis) -> set[str]:
    return set(Queue(DEFAULT_QUEUE, connection=redis).job_ids)


def test_intake_wakes_one_timer_drain_however_many_batches(redis: Redis) -> None:
    """The web's hand-over after an intake batch (RQDispatcher.surveys_scheduled): one pending
    drain job for any number of batches until a worker takes it, on the real Redis and RQ."""
    dispatcher = RQDispatcher(redis)
    for _ in range(5):
        dispatcher.surveys_scheduled()
    assert _queued_job_ids(redis) == {"drain-timers-1"}


def test_first_message_reminder_and_expiry(runtime: Runtime, redis: Redis) -> None:
    survey_id = _schedule(runtime, MORNING)
    first = _timer(runtime, survey_id, TimerKind.FIRST_MESSAGE)

    counts = sweep_once(runtime, MORNING + timedelta(seconds=1))
    assert counts["timers"] == 1
    assert _queued_job_ids(redis) == {"drain-timers-1"}
    # A second sweep (or a second cron process) before the drain ran wakes nothing more.
    assert sweep_once(runtime, MORNING + timedelta(seconds=2))["timers"] == 0
    assert _queued_job_ids(redis) == {"drain-timers-1"}

    result, opening = fire(runtime, first.id, MORNING + timedelta(seconds=3))
    assert result == "first_message done"
    assert len(opening) == 2
    assert fire(runtime, first.id, MORNING + timedelta(seconds=4)) == ("already done", [])

    reminder = _timer(runtime, survey_id, TimerKind.REMINDER)
    expire = _timer(runtime, survey_id, TimerKind.EXPIRE)
    assert reminder.due_at == MORNING + timedelta(seconds=3, hours=24)
    assert expire.due_at == MORNING + timedelta(seconds=3, hours=72)

    day_later = reminder.due_at + timedelta(seconds=1)
    result, reminded = fire(runtime, reminder.id, day_later)
    assert result == "reminder done"
    assert len(reminded) == 1
    with runtime.sessions() as session:
        text = session.get(OutboundMessage, reminded[0]).text  # type: ignore[union-attr]
    assert text.startswith("Nhac lai")

    result, nothing = fire(runtime, expire.id, expire.due_at + timedelta(seconds=1))
    assert (result, nothing) == ("expire done", [])
    with runtime.sessions() as session:
        assert session.get(Survey, survey_id).status is SurveyStatus.EXPIRED  # type: ignore[union-attr]


def test_quiet_hours_defer_the_first_message(runtime: Runtime) -> None:
    survey_id = _schedule(runtime, MORNING)
    first = _timer(runtime, survey_id, TimerKind.FIRST_MESSAGE)
    late = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)  # 22:30 local: quiet hours
    assert fire(runtime, first.id, late) == ("deferred to send window", [])
    moved = _timer(runtime, survey_id, TimerKind.FIRST_MESSAGE)
    assert moved.due_at.astimezone(HCM) == datetime(2026, 11, 21, 7, 30, tzinfo=HCM)
    assert moved.fired_at is None
    assert moved.done_at is None
    with runtime.sessions() as session:
        assert session.scalars(select(OutboundMessage)).all() == []


def test_sweep_recovers_lost_sends_and_events(runtime: Runtime, redis: Redis) -> None:
    survey_id = _schedule(runtime, MORNING)
    first = _timer(runtime, survey_id, TimerKind.FIRST_MESSAGE)
    _result, opening = fire(runtime, first.id, MORNING)
    with runtime.sessions() as session, session.begin():
        store_event(
            session,
            provider="kannel",
            kind="mo",
            provider_id="lost-1",
            payload_enc=runtime.vault.encrypt(
                json.dumps({"from": "84912345678", "text": "5", "id": "lost-1"})
            ),
            sender_hash=None,
        )
        # A worker claimed the first message and died: its claim is older than the lease.
        claimed = session.get(OutboundMessage, opening[0])
        assert claimed is not None
        claimed.status = OutboxStatus.SENDING
        claimed.claimed_at = MORNING
        claimed.requested_at = MORNING  # its request was leaving
    redis.flushdb()  # every queued job is gone, as after a Redis restart

    # Nothing is recovered before the grace period: the jobs may still be on their way.
    early = sweep_once(runtime, datetime.now(UTC) - timedelta(seconds=1))
    assert early["events_recovered"] == 0
    # The dead worker's claim (older than the lease) may have reached the gateway: it is set
    # aside as unknown, never resent by itself.
    assert early["sends_unknown"] == 1
    assert early["sends"] == 1  # the other opening message is due: the send drain is woken
    later = datetime.now(UTC) + timedelta(seconds=runtime.settings.SIPAS_SEND_LEASE + 60)
    counts = sweep_once(runtime, later)
    assert counts["sends"] == 0  # its drain job is still pending: not woken twice
    assert counts["events_recovered"] == 1
    assert {"drain-sends-1", "drain-inbound-1"} <= _queued_job_ids(redis)
    with runtime.sessions() as session:
        unknown = session.get(OutboundMessage, opening[0])
        assert unknown is not None
        assert unknown.status is OutboxStatus.UNKNOWN
        assert unknown.last_error is not None
        assert "outcome unknown" in unknown.last_error
    # Sweeping again while those jobs wait adds nothing to the queue (it never grows).
    sweep_once(runtime, later)
    assert len(Queue(DEFAULT_QUEUE, connection=redis)) == len(_queued_job_ids(redis)) == 3


def test_concurrent_timer_drains_fire_each_timer_once(runtime: Runtime, redis: Redis) -> None:
    """Two workers (or wake-ups from two cron processes) drain at once: row locks with SKIP
    LOCKED split the timers between them, and each survey's opening is stored once."""
    surveys = [_schedule(runtime, MORNING - timedelta(minutes=5), f"09123450{n:02d}") for n in range(40)]
    windowless = Runtime.build(
        runtime.settings.model_copy(update={"SIPAS_BATCH_SIZE": 7, "SIPAS_SEND_WINDOW": "00:00-24:00"})
    )
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: drain(windowless, budget=60), range(2)))
    assert sum(r.get("first_message done", 0) for r in results) == len(surveys)
    assert all(r.get("first_message done", 0) > 0 for r in results)  # both workers took a share
    with runtime.sessions() as session:
        per_survey = dict(
            session.execute(
                select(OutboundMessage.survey_id, func.count()).group_by(OutboundMessage.survey_id)
            ).all()
        )
    assert per_survey == dict.fromkeys(surveys, 2)  # the opening notice and the first question, once
