"""The intake domain service on a real database: what is stored, and which outcome each case gets."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from flows.intake import MAX_CASE_AGE, Outcome, OutcomeKind, submit_cases
from storage.crypto import PhoneVault
from storage.db import session_factory
from storage.models import (
    Agency,
    Case,
    Channel,
    OnTime,
    OptOut,
    StaffPhone,
    Survey,
    SurveyStatus,
    Timer,
    TimerKind,
)
from tests.intake.conftest import case, counts
from tests.support.services import require_or_skip

NOW = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)  # 10:00 in Hà Nội
PHONE = "+84912345678"


def at(hours_ago: float) -> str:
    return (NOW - timedelta(hours=hours_ago)).isoformat()


def submit(
    sessions: sessionmaker[Session], vault: PhoneVault, settings: Settings, *cases: Any, now: datetime = NOW
) -> list[Outcome]:
    with sessions() as session, session.begin():
        return submit_cases(session, vault, settings, list(cases), now)


def kinds(outcomes: list[Outcome]) -> list[str]:
    return [o.outcome.value for o in outcomes]


@pytest.fixture
def submit_one(
    sessions: sessionmaker[Session], vault: PhoneVault, settings: Settings, registry: dict[str, int]
) -> Callable[..., Outcome]:
    """Submit one case (closed an hour ago unless told otherwise) in its own transaction."""

    def run(**fields: Any) -> Outcome:
        fields.setdefault("closed_at", at(1))
        return submit(sessions, vault, settings, case(**fields))[0]

    return run


def test_a_good_case_is_stored_encrypted_and_scheduled(
    sessions: sessionmaker[Session], vault: PhoneVault, settings: Settings, registry: dict[str, int]
) -> None:
    [outcome] = submit(sessions, vault, settings, case(closed_at=at(1), phone="0912 345 678"))
    assert outcome.outcome is OutcomeKind.SCHEDULED
    assert outcome.survey_id is not None
    with sessions() as session:
        stored = session.scalars(select(Case)).one()
        survey = session.scalars(select(Survey)).one()
        timer = session.scalars(select(Timer)).one()
    assert stored.outcome == "scheduled"
    assert stored.agency_id == registry["HN-TX-HD"]
    assert stored.phone_hash == vault.lookup_hash(PHONE)
    assert vault.decrypt(stored.phone_enc or "") == PHONE
    assert "912345678" not in (stored.phone_enc or "")
    assert stored.closed_at == NOW - timedelta(hours=1)
    assert stored.on_time is None
    assert survey.id == outcome.survey_id
    assert (survey.status, survey.channel, survey.flow_name, survey.flow_version) == (
        SurveyStatus.SCHEDULED,
        Channel.SMS,
        "sipas-sms",
        1,
    )
    assert survey.case_pk == stored.id
    assert survey.agency_id == stored.agency_id
    assert survey.inclusion_probability == 1.0
    assert survey.phone_hash == stored.phone_hash
    assert survey.language == "vi"
    assert (timer.survey_id, timer.kind, timer.fired_at) == (survey.id, TimerKind.FIRST_MESSAGE, None)
    # closed an hour ago, no delay, window open all day: the first message is due now
    assert timer.due_at == NOW


def test_first_message_waits_for_the_delay_and_the_send_window(
    sessions: sessionmaker[Session], vault: PhoneVault, settings: Settings, registry: dict[str, int]
) -> None:
    timed = settings.model_copy(update={"SIPAS_FIRST_MESSAGE_DELAY": 600, "SIPAS_SEND_WINDOW": "07:30-21:00"})
    late_night = NOW + timedelta(hours=13)  # 23:00 in Hà Nội: all three cases arrive then
    outcomes = submit(
        sessions,
        vault,
        timed,
        case(case_id="morning", closed_at=NOW.isoformat()),
        case(case_id="evening", phone="0987654321", closed_at=(late_night - timedelta(hours=1)).isoformat()),
        case(case_id="old", phone="0965000111", closed_at=at(48)),
        now=late_night,
    )
    assert kinds(outcomes) == ["scheduled"] * 3
    with sessions() as session:
        rows = session.execute(
            select(Case.case_id, Timer.due_at)
            .join(Survey, Survey.case_pk == Case.id)
            .join(Timer, Timer.survey_id == Survey.id)
        ).all()
    due = {case_id: due_at for case_id, due_at in rows}
    next_morning = datetime(2026, 11, 21, 0, 30, tzinfo=UTC)  # 07:30 in Hà Nội
    assert due == {"morning": next_morning, "evening": next_morning, "old": next_morning}


def test_delay_after_closing_inside_the_window(
    sessions: sessionmaker[Session], vault: PhoneVault, settings: Settings, registry: dict[str, int]
) -> None:
    timed = settings.model_copy(update={"SIPAS_FIRST_MESSAGE_DELAY": 600, "SIPAS_SEND_WINDOW": "07:30-21:00"})
    submit(sessions, vault, timed, case(closed_at=NOW.isoformat()))
    with sessions() as session:
        assert session.scalars(select(Timer.due_at)).one() == NOW + timedelta(seconds=600)


def test_same_case_id_twice_in_one_batch_and_again_later_gives_one_survey(
    sessions: sessionmaker[Session], vault: PhoneVault, settings: Settings, registry: dict[str, int]
) -> None:
    first = case(closed_at=at(1))
    outcomes = submit(sessions, vault, settings, first, first)
    assert kinds(outcomes) == ["scheduled", "duplicate"]
    assert outcomes[1].survey_id == outcomes[0].survey_id
    again = submit(sessions, vault, settings, case(closed_at=at(2), phone="0987654321"))
    assert again[0].outcome is OutcomeKind.DUPLICATE
    assert again[0].survey_id == outcomes[0].survey_id
    assert counts(sessions) == {"cases": 1, "surveys": 1, "timers": 1}


def test_duplicate_of_a_case_without_survey_has_no_survey_id(
    sessions: sessionmaker[Session], vault: PhoneVault, settings: Settings, registry: dict[str, int]
) -> None:
    old = case(closed_at=at(100))
    assert kinds(submit(sessions, vault, settings, old, old)) == ["not_sampled", "duplicate"]
    assert submit(sessions, vault, settings, old)[0].survey_id is None


def test_mixed_batch_stores_the_good_and_reports_the_bad(
    sessions: sessionmaker[Session], vault: PhoneVault, settings: Settings, registry: dict[str, int]
) -> None:
    outcomes = submit(
        sessions,
        vault,
        settings,
        case(case_id="A", closed_at=at(1)),
        case(case_id="B", closed_at=at(1), phone="024 3825 1234"),
        case(case_id="C", closed_at=at(1), agency_code="HN-XX"),
        "not an object",
        case(case_id="D", closed_at=at(1), phone="0987654321"),
    )
    assert kinds(outcomes) == ["scheduled", "rejected", "rejected", "rejected", "scheduled"]
    assert [e.field for e in outcomes[1].errors] == ["phone"]
    assert [(e.field, e.message) for e in outcomes[2].errors] == [
        ("agency_code", "is not in the agency registry")
    ]
    assert [o.case_id for o in outcomes] == ["A", "B", "C", None, "D"]
    with sessions() as session:
        assert set(session.scalars(select(Case.case_id))) == {"A", "D"}
    assert counts(sessions) == {"cases": 2, "surveys": 2, "timers": 2}


def test_opted_out_phone_is_stored_but_not_surveyed(
    sessions: sessionmaker[Session], vault: PhoneVault, settings: Settings, submit_one: Callable[..., Outcome]
) -> None:
    with sessions() as session, session.begin():
        session.add(OptOut(phone_hash=vault.lookup_hash(PHONE), source="sms"))
    outcome = submit_one()
    assert (outcome.outcome, outcome.survey_id) == (OutcomeKind.OPTED_OUT, None)
    assert counts(sessions) == {"cases": 1, "surveys": 0, "timers": 0}
    with sessions() as session:
        assert session.scalars(select(Case.outcome)).one() == "opted_out"


def test_opted_out_zalo_user_is_not_surveyed(
    sessions: sessionmaker[Session], vault: PhoneVault, settings: Settings, submit_one: Callable[..., Outcome]
) -> None:
    with sessions() as session, session.begin():
        session.add(OptOut(phone_hash=vault.lookup_hash("4572914123456789012"), source="zalo"))
    outcome = submit_one(phone=None, zalo_user_id="4572914123456789012", channel="zalo")
    assert outcome.outcome is OutcomeKind.OPTED_OUT


def test_staff_number_of_the_same_agency_is_not_surveyed(
    sessions: sessionmaker[Session],
    vault: PhoneVault,
    registry: dict[str, int],
    submit_one: Callable[..., Outcome],
) -> None:
    with sessions() as session, session.begin():
        session.add(StaffPhone(agency_id=registry["HN-TX-HD"], phone_hash=vault.lookup_hash(PHONE)))
    assert submit_one(case_id="own").outcome is OutcomeKind.STAFF_NUMBER
    # the same person as a citizen of another unit is surveyed
    assert submit_one(case_id="other", agency_code="HN-TX-KM").outcome is OutcomeKind.SCHEDULED
    with sessions() as session:
        assert {r.case_id: r.outcome for r in session.execute(select(Case.case_id, Case.outcome))} == {
            "own": "staff_number",
            "other": "scheduled",
        }


def _past_survey(
    sessions: sessionmaker[Session], vault: PhoneVault, agency_id: int, days_ago: int, status: SurveyStatus
) -> None:
    created = NOW - timedelta(days=days_ago)
    with sessions() as session, session.begin():
        old = Case(
            case_id=f"old-{days_ago}-{status.value}",
            agency_id=agency_id,
            procedure_code="1.001612",
            phone_enc=vault.encrypt(PHONE),
            phone_hash=vault.lookup_hash(PHONE),
            closed_at=created,
            outcome="scheduled",
            created_at=created,
        )
        session.add(old)
        session.flush()
        session.add(
            Survey(
                case_pk=old.id,
                agency_id=agency_id,
                flow_name="sipas-sms",
                channel=Channel.SMS,
                status=status,
                phone_hash=old.phone_hash,
                created_at=created,
            )
        )


def test_frequency_cap_counts_recent_surveys_of_any_agency(
    sessions: sessionmaker[Session],
    vault: PhoneVault,
    registry: dict[str, int],
    submit_one: Callable[..., Outcome],
) -> None:
    _past_survey(sessions, vault, registry["HN-TX-KM"], days_ago=10, status=SurveyStatus.COMPLETED)
    assert submit_one().outcome is OutcomeKind.FREQUENCY_CAPPED
    assert counts(sessions) == {"cases": 2, "surveys": 1, "timers": 0}


def test_frequency_cap_ends_after_the_configured_days(
    sessions: sessionmaker[Session],
    vault: PhoneVault,
    registry: dict[str, int],
    submit_one: Callable[..., Outcome],
) -> None:
    _past_survey(sessions, vault, registry["HN-TX-KM"], days_ago=31, status=SurveyStatus.COMPLETED)
    assert submit_one().outcome is OutcomeKind.SCHEDULED


def test_a_survey_still_under_way_always_caps(
    sessions: sessionmaker[Session],
    vault: PhoneVault,
    registry: dict[str, int],
    submit_one: Callable[..., Outcome],
) -> None:
    _past_survey(sessions, vault, registry["HN-TX-KM"], days_ago=45, status=SurveyStatus.ACTIVE)
    assert submit_one().outcome is OutcomeKind.FREQUENCY_CAPPED


def test_frequency_cap_zero_still_caps_an_active_survey(
    sessions: sessionmaker[Session], vault: PhoneVault, settings: Settings, registry: dict[str, int]
) -> None:
    uncapped = settings.model_copy(update={"SIPAS_FREQUENCY_CAP_DAYS": 0})
    outcomes = submit(
        sessions, vault, uncapped, case(case_id="A", closed_at=at(1)), case(case_id="B", closed_at=at(1))
    )
    assert kinds(outcomes) == ["scheduled", "frequency_capped"]


def test_one_citizen_twice_in_one_batch_is_asked_once(
    sessions: sessionmaker[Session], vault: PhoneVault, settings: Settings, registry: dict[str, int]
) -> None:
    outcomes = submit(
        sessions,
        vault,
        settings,
        case(case_id="A", closed_at=at(2)),
        case(case_id="B", closed_at=at(1), agency_code="HN-TX-KM", phone="84912345678"),
    )
    assert kinds(outcomes) == ["scheduled", "frequency_capped"]


def test_case_closed_long_ago_is_stored_for_scores_but_not_surveyed(
    sessions: sessionmaker[Session], submit_one: Callable[..., Outcome]
) -> None:
    hours = MAX_CASE_AGE.total_seconds() / 3600
    outcome = submit_one(closed_at=at(hours + 1), due_at=at(hours + 2))
    assert (outcome.outcome, outcome.reason) == (OutcomeKind.NOT_SAMPLED, "closed_too_long_ago")
    assert outcome.as_json()["reason"] == "closed_too_long_ago"
    with sessions() as session:
        stored = session.scalars(select(Case)).one()
    assert (stored.outcome, stored.on_time) == ("not_sampled", OnTime.LATE)
    assert counts(sessions) == {"cases": 1, "surveys": 0, "timers": 0}
    assert submit_one(case_id="recent", closed_at=at(hours - 1), phone="0987654321").outcome is (
        OutcomeKind.SCHEDULED
    )


def test_sampling_probability_of_the_agency(
    sessions: sessionmaker[Session], vault: PhoneVault, settings: Settings, registry: dict[str, int]
) -> None:
    with sessions() as session, session.begin():
        session.get_one(Agency, registry["HN-TX-HD"]).sampling_probability = 0.0
        session.get_one(Agency, registry["HN-TX-KM"]).sampling_probability = 0.5
    paused = submit(sessions, vault, settings, case(case_id="P", closed_at=at(1)))[0]
    assert (paused.outcome, paused.reason) == (OutcomeKind.NOT_SAMPLED, "sample_draw")
    half = submit(
        sessions,
        vault,
        settings,
        *(
            case(case_id=f"K{i}", agency_code="HN-TX-KM", phone=f"09120000{i:02d}", closed_at=at(1))
            for i in range(40)
        ),
    )
    scheduled = [o for o in half if o.outcome is OutcomeKind.SCHEDULED]
    assert 0 < len(scheduled) < 40
    assert {o.outcome for o in half} == {OutcomeKind.SCHEDULED, OutcomeKind.NOT_SAMPLED}
    with sessions() as session:
        assert set(session.scalars(select(Survey.inclusion_probability))) == {0.5}
    # resending gives the stored decision back, and a fresh database would draw the same way
    assert kinds(
        submit(sessions, vault, settings, case(case_id="K0", agency_code="HN-TX-KM", closed_at=at(1)))
    ) == ["duplicate"]


@pytest.mark.parametrize(
    ("fields", "channel", "flow"),
    [
        ({"channel": "zalo", "zalo_user_id": "4572914123456789012"}, Channel.ZALO, "sipas-zalo"),
        ({"phone": None, "zalo_user_id": "4572914123456789012"}, Channel.ZALO, "sipas-zalo"),
        ({"channel": "zalo"}, Channel.SMS, "sipas-sms"),
        ({"zalo_user_id": "4572914123456789012"}, Channel.SMS, "sipas-sms"),
        ({"channel": "sms", "zalo_user_id": "4572914123456789012"}, Channel.SMS, "sipas-sms"),
    ],
)
def test_channel_choice(
    sessions: sessionmaker[Session],
    vault: PhoneVault,
    submit_one: Callable[..., Outcome],
    fields: dict[str, Any],
    channel: Channel,
    flow: str,
) -> None:
    assert submit_one(**fields).outcome is OutcomeKind.SCHEDULED
    with sessions() as session:
        survey = session.scalars(select(Survey)).one()
        stored = session.scalars(select(Case)).one()
    assert (survey.channel, survey.flow_name) == (channel, flow)
    if "zalo_user_id" in fields:
        assert stored.zalo_user_hash == vault.lookup_hash("4572914123456789012")
        assert vault.decrypt(stored.zalo_user_id_enc or "") == "4572914123456789012"


def test_case_details_are_kept(sessions: sessionmaker[Session], submit_one: Callable[..., Outcome]) -> None:
    submit_one(
        received_at=at(50),
        due_at=(NOW + timedelta(days=2)).isoformat(),
        apology_sent=True,
        channel="sms",
        language="en",
        procedure_name="Đăng ký khai sinh",
    )
    with sessions() as session:
        stored = session.scalars(select(Case)).one()
        survey = session.scalars(select(Survey)).one()
    assert stored.received_at == NOW - timedelta(hours=50)
    assert stored.on_time is OnTime.EARLY
    assert (stored.apology_sent, stored.channel_pref, stored.language) == (True, Channel.SMS, "en")
    assert stored.procedure_name == "Đăng ký khai sinh"
    assert survey.language == "en"


def test_intake_works_on_both_backends(any_db_url: str, vault: PhoneVault, settings: Settings) -> None:
    sessions = session_factory(any_db_url)
    with sessions() as session, session.begin():
        session.add(Agency(code="HN-TX-HD", name="UBND phường Hạ Đình", level="commune"))
    outcomes = submit(
        sessions,
        vault,
        settings,
        case(case_id="A", closed_at=at(1)),
        case(case_id="A", closed_at=at(1)),
        case(case_id="B", closed_at=at(1), phone="bad"),
        case(case_id="C", closed_at=at(1), phone="0987654321"),
    )
    assert kinds(outcomes) == ["scheduled", "duplicate", "rejected", "scheduled"]
    assert counts(sessions) == {"cases": 2, "surveys": 2, "timers": 2}


def test_cases_of_a_unit_that_had_ceased_are_refused_naming_its_successor(
    any_db_url: str, vault: PhoneVault, settings: Settings
) -> None:
    """A unit's valid_to is its last local day: a case closed after it is rejected (with the unit
    that took it over), one closed on that day still counts, and the batch's other cases go on."""
    sessions = session_factory(any_db_url)
    with sessions() as session, session.begin():
        ward = Agency(code="HN-P-KD", name="UBND phường Khương Đình", level="commune")
        session.add(ward)
        session.flush()
        session.add(Agency(code="HN-TX", name="UBND quận Thanh Xuân", level="district",
                           valid_to=date(2026, 11, 19), successor_id=ward.id))  # fmt: skip
        session.add(Agency(code="HN-OLD", name="UBND xã Cũ", level="commune", valid_to=date(2026, 11, 19)))
    # 23:30 in Hà Nội on the 19th (16:30 UTC) is still the old unit's last day; 00:30 on the 20th is not.
    outcomes = submit(
        sessions,
        vault,
        settings,
        case(case_id="LAST-DAY", agency_code="HN-TX", closed_at="2026-11-19T23:30:00+07:00"),
        case(case_id="AFTER", agency_code="HN-TX", closed_at="2026-11-19T17:30:00+00:00", phone="0987654321"),
        case(case_id="NO-HEIR", agency_code="HN-OLD", closed_at=at(1), phone="0987654322"),
        case(case_id="NEW-UNIT", agency_code="HN-P-KD", closed_at=at(1), phone="0987654323"),
    )
    assert kinds(outcomes) == ["scheduled", "rejected", "rejected", "scheduled"]
    assert [e.as_json() for e in outcomes[1].errors] == [
        {
            "field": "agency_code",
            "message": "HN-TX ceased on 2026-11-19; merged into HN-P-KD (UBND phường Khương Đình): "
            "send its cases under HN-P-KD",
        }
    ]
    assert outcomes[2].errors[0].message == "HN-OLD ceased on 2026-11-19; no successor unit is registered"
    with sessions() as session:
        assert sorted(session.scalars(select(Case.case_id))) == ["LAST-DAY", "NEW-UNIT"]


def test_naive_now_is_refused(sessions: sessionmaker[Session], vault: PhoneVault, settings: Settings) -> None:
    with sessions() as session, pytest.raises(ValueError, match="timezone-aware"):
        submit_cases(session, vault, settings, [], datetime(2026, 11, 20, 10, 0))


def test_concurrent_requests_with_one_case_id_make_one_survey(
    postgres_url: str | None, vault: PhoneVault, settings: Settings
) -> None:
    """Two transactions insert the same case at once: the second waits on the unique index, then
    gets the conflict inside its savepoint, answers `duplicate`, and still stores its other case."""
    require_or_skip(postgres_url is not None, "needs PostgreSQL (row locks on the unique index)")
    assert postgres_url is not None
    sessions = session_factory(postgres_url)
    with sessions() as session, session.begin():  # `settings` emptied this database (db_url)
        session.add(Agency(code="HN-TX-HD", name="UBND phường Hạ Đình", level="commune"))
    shared = case(case_id="SHARED", closed_at=at(1))
    second_result: list[Outcome] = []

    first = sessions()
    first.begin()
    first_outcomes = submit_cases(first, vault, settings, [shared], NOW)

    def second() -> None:
        second_result.extend(
            submit(
                sessions, vault, settings, shared, case(case_id="OTHER", closed_at=at(1), phone="0987654321")
            )
        )

    thread = threading.Thread(target=second)
    thread.start()
    try:
        with sessions() as watcher:
            # wait until the second transaction is blocked on the first one's uncommitted row
            while not watcher.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database() AND pid <> pg_backend_pid()"
                )
            ):
                watcher.rollback()
                thread.join(0.01)
                assert thread.is_alive(), "the second request did not wait for the first"
        first.commit()
    finally:
        first.close()
        thread.join()
    assert kinds(first_outcomes) == ["scheduled"]
    assert kinds(second_result) == ["duplicate", "scheduled"]
    assert second_result[0].survey_id == first_outcomes[0].survey_id
    assert counts(sessions) == {"cases": 2, "surveys": 2, "timers": 2}


def test_a_concurrent_request_that_rolls_back_leaves_the_case_to_the_other(
    postgres_url: str | None, vault: PhoneVault, settings: Settings
) -> None:
    """The insert that waited on the other transaction's row goes ahead when that one rolls
    back: the case is stored and scheduled once, by the request that committed."""
    require_or_skip(postgres_url is not None, "needs PostgreSQL (row locks on the unique index)")
    assert postgres_url is not None
    sessions = session_factory(postgres_url)
    with sessions() as session, session.begin():
        session.add(Agency(code="HN-TX-HD", name="UBND phường Hạ Đình", level="commune"))
    shared = case(case_id="SHARED", closed_at=at(1))
    second_result: list[Outcome] = []
    first = sessions()
    first.begin()
    submit_cases(first, vault, settings, [shared], NOW)
    thread = threading.Thread(target=lambda: second_result.extend(submit(sessions, vault, settings, shared)))
    thread.start()
    try:
        with sessions() as watcher:
            while not watcher.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database() AND pid <> pg_backend_pid()"
                )
            ):
                watcher.rollback()
                thread.join(0.01)
                assert thread.is_alive(), "the second request did not wait for the first"
        first.rollback()
    finally:
        first.close()
        thread.join()
    assert kinds(second_result) == ["scheduled"]
    assert counts(sessions) == {"cases": 1, "surveys": 1, "timers": 1}
