"""Rules set at a province, overridden at a ward, removed again: seen through intake (sampling,
send window, holidays, first-message delay, frequency cap) and the timer jobs (reminder, expiry,
quiet hours, holidays), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from redis import Redis
from sqlalchemy import select

from config.settings import Settings
from flows.intake import submit_cases
from flows.rules import RuleBook, answer_reach, rule_spec
from storage.agencies import get_by_code
from storage.models import Agency, AgencyLevel, Survey, SurveyStatus, Timer, TimerKind
from storage.rules import set_rule, unset_rule
from workers.runtime import Runtime
from workers.timers import fire

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
# Friday 20 November 2026, 10:00 local.
MORNING = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)


@pytest.fixture
def runtime(any_db_url: str, settings: Settings, redis: Redis) -> Runtime:
    """A province with two wards, on the backend under test; a 07:30-21:00 default window."""
    built = Runtime.build(
        settings.model_copy(update={"DATABASE_URL": any_db_url, "SIPAS_SEND_WINDOW": "07:30-21:00"})
    )
    with built.sessions() as session, session.begin():
        province = Agency(code="P", name="UBND tỉnh Thử", level=AgencyLevel.PROVINCE)
        session.add(province)
        session.flush()
        for code in ("P-A", "P-B"):
            session.add(
                Agency(
                    code=code, name=f"UBND phường {code}", level=AgencyLevel.COMMUNE, parent_id=province.id
                )
            )
    return built


def _set(runtime: Runtime, code: str, name: str, text: str | None) -> None:
    """Set (text) or remove (None) a rule, as `sipas rules set|unset` does."""
    with runtime.sessions() as session, session.begin():
        agency = get_by_code(session, code)
        assert agency is not None
        if text is None:
            unset_rule(session, agency.id, name)
        else:
            set_rule(session, agency.id, name, rule_spec(name).parse(text), by="test", now=MORNING)


_serial = iter(range(1, 10_000))


def _submit(runtime: Runtime, code: str, closed_at: datetime, **extra: Any) -> tuple[str, int | None]:
    n = next(_serial)
    case = {"case_id": f"{code}-{n}", "agency_code": code, "procedure_code": "1.001612",
            "phone": f"09123{n:05d}", "closed_at": closed_at.isoformat(), **extra}  # fmt: skip
    with runtime.sessions() as session, session.begin():
        [outcome] = submit_cases(session, runtime.vault, runtime.settings, [case], closed_at)
    return outcome.outcome.value, outcome.survey_id


def _timer(runtime: Runtime, survey_id: int, kind: TimerKind) -> Timer:
    with runtime.sessions() as session:
        return session.scalars(select(Timer).where(Timer.survey_id == survey_id, Timer.kind == kind)).one()


def _first_due(runtime: Runtime, code: str, closed_at: datetime) -> datetime:
    outcome, survey_id = _submit(runtime, code, closed_at)
    assert outcome == "scheduled"
    assert survey_id is not None
    return _timer(runtime, survey_id, TimerKind.FIRST_MESSAGE).due_at.astimezone(HCM)


def _origin(runtime: Runtime, code: str, name: str) -> str:
    with runtime.sessions() as session:
        agency = get_by_code(session, code)
        assert agency is not None
        return RuleBook(session, runtime.settings).resolved(agency)[name].origin("en")


def test_sampling_set_at_province_overridden_at_ward_then_removed(runtime: Runtime) -> None:
    assert _submit(runtime, "P-A", MORNING)[0] == "scheduled"
    _set(runtime, "P", "sampling", "0")  # the province pauses surveys
    assert _submit(runtime, "P-A", MORNING)[0] == "not_sampled"
    assert _submit(runtime, "P-B", MORNING)[0] == "not_sampled"
    assert _origin(runtime, "P-A", "sampling") == "inherited from UBND tỉnh Thử (P)"
    _set(runtime, "P-A", "sampling", "1")  # one ward asks everyone again
    assert _submit(runtime, "P-A", MORNING)[0] == "scheduled"
    assert _submit(runtime, "P-B", MORNING)[0] == "not_sampled"
    assert _origin(runtime, "P-A", "sampling") == "set here"
    _set(runtime, "P-A", "sampling", None)  # removed: the ward inherits the pause again
    assert _submit(runtime, "P-A", MORNING)[0] == "not_sampled"
    _set(runtime, "P", "sampling", None)
    assert _submit(runtime, "P-A", MORNING)[0] == "scheduled"
    assert _origin(runtime, "P-A", "sampling") == "default: 1"


def test_send_window_and_delay_inherited_overridden_and_removed(runtime: Runtime) -> None:
    evening = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # 19:00 local
    assert _first_due(runtime, "P-A", evening) == evening.astimezone(HCM)
    _set(runtime, "P", "send_window", "08:00-18:00")
    tomorrow_8 = datetime(2026, 11, 21, 8, 0, tzinfo=HCM)
    assert _first_due(runtime, "P-A", evening) == tomorrow_8
    _set(runtime, "P-A", "send_window", "07:00-20:00")
    assert _first_due(runtime, "P-A", evening) == evening.astimezone(HCM)
    assert _first_due(runtime, "P-B", evening) == tomorrow_8  # the sibling keeps the province's
    assert _origin(runtime, "P", "send_window") == "set here"
    _set(runtime, "P-A", "send_window", None)
    assert _first_due(runtime, "P-A", evening) == tomorrow_8
    _set(runtime, "P", "first_message_delay", "2h")
    assert _first_due(runtime, "P-B", MORNING) == (MORNING + timedelta(hours=2)).astimezone(HCM)
    assert _origin(runtime, "P-B", "send_window") == "inherited from UBND tỉnh Thử (P)"
    assert _origin(runtime, "P-B", "reminder_after") == "default: SIPAS_REMINDER_AFTER"


def test_a_province_holiday_moves_a_ward_case_to_the_next_working_day(runtime: Runtime) -> None:
    _set(runtime, "P", "holidays", "2026-11-20, 2026-11-21")
    # Closed on Friday the 20th (a holiday), 10:00: asked Sunday 22nd at the window's opening.
    assert _first_due(runtime, "P-A", MORNING) == datetime(2026, 11, 22, 7, 30, tzinfo=HCM)
    _set(runtime, "P-A", "holidays", "2026-11-21")  # the ward works on the 20th
    assert _first_due(runtime, "P-A", MORNING) == MORNING.astimezone(HCM)
    assert _first_due(runtime, "P-B", MORNING) == datetime(2026, 11, 22, 7, 30, tzinfo=HCM)
    _set(runtime, "P-A", "holidays", None)
    assert _first_due(runtime, "P-A", MORNING) == datetime(2026, 11, 22, 7, 30, tzinfo=HCM)


def test_timers_read_the_rules_when_they_fire(runtime: Runtime) -> None:
    outcome, survey_id = _submit(runtime, "P-A", MORNING)
    assert (outcome, survey_id is not None) == ("scheduled", True)
    assert survey_id is not None
    first = _timer(runtime, survey_id, TimerKind.FIRST_MESSAGE)
    # The province declares today a holiday after the case was scheduled: the timer waits.
    _set(runtime, "P", "holidays", "2026-11-20")
    assert fire(runtime, first.id, MORNING) == ("deferred to send window", [])
    moved = _timer(runtime, survey_id, TimerKind.FIRST_MESSAGE)
    saturday = datetime(2026, 11, 21, 7, 30, tzinfo=HCM)
    assert moved.due_at.astimezone(HCM) == saturday
    # The ward's own reminder and expiry, and the province's, as the first message goes out.
    _set(runtime, "P", "reminder_after", "2h")
    _set(runtime, "P-A", "expiry", "1d")
    result, opening = fire(runtime, first.id, saturday)
    assert result == "first_message done"
    assert len(opening) == 2
    reminder = _timer(runtime, survey_id, TimerKind.REMINDER)
    expire = _timer(runtime, survey_id, TimerKind.EXPIRE)
    assert reminder.due_at.astimezone(HCM) == saturday + timedelta(hours=2)
    assert expire.due_at.astimezone(HCM) == saturday + timedelta(days=1)
    # A reminder due (09:30) before the ward's new window waits for it (10:00); the parent keeps
    # the default.
    _set(runtime, "P-A", "send_window", "10:00-11:00")
    assert fire(runtime, reminder.id, reminder.due_at) == ("deferred to send window", [])
    assert _timer(runtime, survey_id, TimerKind.REMINDER).due_at.astimezone(HCM) == datetime(
        2026, 11, 21, 10, 0, tzinfo=HCM
    )
    assert _origin(runtime, "P", "send_window") == "default: SIPAS_SEND_WINDOW"


def test_frequency_cap_per_agency(runtime: Runtime) -> None:
    first = _submit(runtime, "P-A", MORNING, phone="0987654321")
    assert first[0] == "scheduled"
    later = MORNING + timedelta(days=5)
    with runtime.sessions() as session, session.begin():
        # The first survey is over; only the cap can stop a second one.
        survey = session.get(Survey, first[1])
        assert survey is not None
        survey.status = SurveyStatus.COMPLETED
    assert _submit(runtime, "P-A", later, phone="0987654321")[0] == "frequency_capped"
    _set(runtime, "P", "frequency_cap_days", "3")
    assert _submit(runtime, "P-B", later, phone="0987654321")[0] == "scheduled"


def test_automatic_sampling_uses_the_units_observed_response_rate(runtime: Runtime) -> None:
    for n in range(40):  # 40 asked in the last weeks, 20 of them answered to the end: r = 0.5
        outcome, survey_id = _submit(runtime, "P-A", MORNING - timedelta(days=5))
        assert outcome == "scheduled"
        with runtime.sessions() as session, session.begin():
            survey = session.get(Survey, survey_id)
            assert survey is not None
            survey.started_at = MORNING - timedelta(days=5)
            survey.status = SurveyStatus.COMPLETED if n % 2 else SurveyStatus.EXPIRED
    _set(runtime, "P", "sampling", "auto margin=0.05 cases=1000")
    with runtime.sessions() as session:
        book = RuleBook(session, runtime.settings)
        ward, sibling = get_by_code(session, "P-A"), get_by_code(session, "P-B")
        assert ward is not None
        assert sibling is not None
        # n = 1000 / (1 + 1000 * 0.05^2) = 285.7 answers; at r = 0.5, 571.4 of 1000 cases are asked.
        assert book.sampling_probability(ward, MORNING) == pytest.approx(285.714 / 500, rel=1e-4)
        # Too few asked yet in the sibling to know its response rate: every case is asked.
        assert book.sampling_probability(sibling, MORNING) == 1.0


def test_the_nightly_recount_reaches_as_far_as_any_units_rules(runtime: Runtime) -> None:
    with runtime.sessions() as session:
        # Defaults: no delay, 10.5 quiet hours (07:30-21:00), 72 h expiry.
        assert answer_reach(session, runtime.settings) == timedelta(hours=82, minutes=30)
    _set(runtime, "P-A", "expiry", "7d")
    _set(runtime, "P", "holidays", "2026-04-30, 2026-05-01, 2026-09-02")  # a run of two days
    _set(runtime, "P-B", "send_window", "09:00-11:00")  # 22 quiet hours
    with runtime.sessions() as session:
        assert answer_reach(session, runtime.settings) == timedelta(days=7 + 2, hours=22)
