"""The timer drain's batches (issue 9 item 5): a batch locks its surveys in one statement and
has no savepoint per timer, yet a timer whose survey another transaction holds waits without
holding the others back, and a timer whose write the database refuses fails alone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from redis import Redis
from sqlalchemy import select, text

from config.settings import Settings
from flows.intake import submit_cases
from flows.survey_rows import lock_survey
from storage.db import session_factory
from storage.models import Agency, AgencyLevel, OutboundMessage, Survey, SurveyStatus, Timer, TimerKind
from tests.support.services import require_or_skip
from workers.runtime import Runtime
from workers.timers import drain

CLOSED = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)


@pytest.fixture
def runtime(db_url: str, settings: Settings, redis: Redis) -> Runtime:
    require_or_skip(db_url.startswith("postgresql"), "row locks and the refusing trigger are PostgreSQL's")
    built = Runtime.build(settings.model_copy(update={"SIPAS_SEND_WINDOW": "00:00-24:00"}))
    with built.sessions() as session, session.begin():
        session.add(Agency(code="W", name="UBND phường Hạ Đình", level=AgencyLevel.COMMUNE))
    return built


def _schedule(runtime: Runtime, phones: list[str]) -> list[int]:
    cases = [
        {"case_id": f"C-{phone}", "agency_code": "W", "procedure_code": "1.001612", "phone": phone,
         "closed_at": CLOSED.isoformat()}
        for phone in phones
    ]  # fmt: skip
    with runtime.sessions() as session, session.begin():
        outcomes = submit_cases(session, runtime.vault, runtime.settings, cases, CLOSED)
    ids = [outcome.survey_id for outcome in outcomes]
    assert all(survey_id is not None for survey_id in ids), outcomes
    return [survey_id for survey_id in ids if survey_id is not None]


def _state(runtime: Runtime) -> tuple[dict[int, SurveyStatus], dict[int, int], set[int]]:
    with runtime.sessions() as session:
        statuses = {s.id: s.status for s in session.scalars(select(Survey))}
        messages: dict[int, int] = {}
        for survey_id in session.scalars(select(OutboundMessage.survey_id)):
            if survey_id is not None:
                messages[survey_id] = messages.get(survey_id, 0) + 1
        open_first = set(
            session.scalars(
                select(Timer.survey_id).where(Timer.kind == TimerKind.FIRST_MESSAGE, Timer.done_at.is_(None))
            )
        )
    return statuses, messages, open_first


def test_a_timer_whose_survey_is_held_elsewhere_waits_alone(runtime: Runtime, db_url: str) -> None:
    held, *free = _schedule(runtime, ["0912000101", "0912000102", "0912000103"])
    sessions = session_factory(db_url)
    with sessions() as other, other.begin():
        assert lock_survey(other, held) is not None  # e.g. a reply being applied to it
        counts = drain(runtime, budget=30)
        statuses, messages, open_first = _state(runtime)
        assert counts["survey busy, left for later"] == 1
        assert [statuses[s] for s in free] == [SurveyStatus.ACTIVE] * 2
        assert [messages.get(s) for s in free] == [2, 2]  # opening and first question
        assert (statuses[held], messages.get(held), open_first) == (SurveyStatus.SCHEDULED, None, {held})
    drain(runtime, budget=30)
    statuses, messages, open_first = _state(runtime)
    assert (statuses[held], messages[held], open_first) == (SurveyStatus.ACTIVE, 2, set())


@pytest.fixture
def refused_start(db_url: str) -> Iterator[None]:
    """The database refuses to start one survey (a trigger on its row): a failure seen only when
    the batch's rows are written."""
    sessions = session_factory(db_url)
    with sessions() as session, session.begin():
        session.execute(
            text(
                "CREATE FUNCTION refuse_start() RETURNS trigger AS $$ BEGIN "
                "IF NEW.status = 'active' AND NEW.phone_hash = (SELECT phone_hash FROM cases "
                "WHERE case_id = 'C-0912000202') THEN RAISE EXCEPTION 'refused by the test trigger'; "
                "END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
            )
        )
        trigger = "CREATE TRIGGER refuse_start BEFORE UPDATE ON surveys FOR EACH ROW "
        session.execute(text(trigger + "EXECUTE FUNCTION refuse_start()"))
    yield
    with sessions() as session, session.begin():
        session.execute(text("DROP TRIGGER refuse_start ON surveys"))
        session.execute(text("DROP FUNCTION refuse_start()"))


def test_a_timer_whose_write_is_refused_fails_alone(runtime: Runtime, refused_start: None) -> None:
    first, poison, last = _schedule(runtime, ["0912000201", "0912000202", "0912000203"])
    drain(runtime, budget=30)
    statuses, messages, open_first = _state(runtime)
    assert (statuses[first], statuses[last]) == (SurveyStatus.ACTIVE, SurveyStatus.ACTIVE)
    assert (messages[first], messages[last]) == (2, 2)
    assert (statuses[poison], messages.get(poison), open_first) == (SurveyStatus.SCHEDULED, None, {poison})
