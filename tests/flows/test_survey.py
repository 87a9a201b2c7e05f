"""The survey service on both databases: start, replies, refusal, reminder, expiry, idempotent
retries, and the survey row as the one record of the conversation (Redis holds none of it)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis import Redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from config.settings import Settings
from flows.survey import (
    expire_survey,
    find_active_survey,
    handle_reply,
    record_opt_out,
    send_reminder,
    start_survey,
)
from flows.survey_rows import lock_survey
from flows.templates import SMS_LIMIT, gsm7_length, is_unaccented
from storage.crypto import PhoneVault
from storage.db import transaction
from storage.models import (
    Answer,
    Channel,
    Comment,
    OptOut,
    OutboundMessage,
    Survey,
    SurveyStatus,
    Timer,
    TimerKind,
)
from storage.outbox import write_staged
from tests.flows.factories import (
    LONGEST_AGENCY_SMS,
    PHONE,
    make_agency,
    make_inbound,
    restart_word,
    scheduled_survey,
)

NOW = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)  # 10:00 in Ha Noi


def _new_survey(url: str, vault: PhoneVault, **kwargs: Any) -> int:
    with transaction(url) as session:
        return scheduled_survey(session, vault, **kwargs).id


def _start(url: str, settings: Settings, survey_id: int) -> list[int]:
    with transaction(url) as session:
        start_survey(session, settings, survey_id, NOW)
        return write_staged(session)


def _reply(
    url: str,
    settings: Settings,
    vault: PhoneVault,
    survey_id: int,
    text: str,
    at: datetime = NOW,
) -> tuple[int, list[int]]:
    """What the inbound job does: store the MO, find the survey, apply the reply."""
    with transaction(url) as session:
        event_id = make_inbound(session, vault, text)
        survey = find_active_survey(session, Channel.SMS, vault.lookup_hash(PHONE))
        assert survey is not None
        assert survey.id == survey_id
        handle_reply(session, survey, text, event_id, at)
        return event_id, write_staged(session)


def _texts(session: Session, ids: list[int]) -> list[str]:
    return [session.get_one(OutboundMessage, i).text for i in ids]


def _count(session: Session, model: type[object], survey_id: int) -> int:
    column = model.survey_id  # type: ignore[attr-defined]
    return int(session.scalar(select(func.count()).select_from(model).where(column == survey_id)) or 0)


def _timers(session: Session, survey_id: int) -> dict[TimerKind, Timer]:
    return {t.kind: t for t in session.scalars(select(Timer).where(Timer.survey_id == survey_id))}


def test_start_survey_queues_two_sms_sets_state_and_timers(
    any_db_url: str, settings: Settings, vault: PhoneVault
) -> None:
    survey_id = _new_survey(any_db_url, vault)
    ids = _start(any_db_url, settings, survey_id)
    with transaction(any_db_url) as session:
        messages = [session.get_one(OutboundMessage, i) for i in ids]
        assert [m.dedupe_key for m in messages] == [
            f"survey:{survey_id}:open:0",
            f"survey:{survey_id}:open:1",
        ]
        assert messages[0].text.startswith(f"{LONGEST_AGENCY_SMS} moi Ong/Ba gop y ve ho so 000.00.20.H29")
        assert messages[1].text.startswith("Cau 1/3-5:")
        for m in messages:
            assert gsm7_length(m.text) <= SMS_LIMIT
            assert is_unaccented(m.text)
            assert vault.decrypt(m.recipient_enc) == PHONE
            assert m.survey_id == survey_id
            assert m.next_attempt_at == NOW
        survey = session.get_one(Survey, survey_id)
        assert (survey.status, survey.started_at, survey.state_version) == (SurveyStatus.ACTIVE, NOW, 1)
        assert survey.state == {
            "status": "asking",
            "question": "overall",
            "reprompts": 0,
            "version": 1,
            "answers": {},
            "path": ["overall"],
            "events": [],
        }
        timers = _timers(session, survey_id)
        assert timers[TimerKind.FIRST_MESSAGE].done_at is None  # its drain marks it (workers.timers)
        assert timers[TimerKind.REMINDER].due_at == NOW + timedelta(hours=24)
        assert timers[TimerKind.EXPIRE].due_at == NOW + timedelta(hours=72)
        assert timers[TimerKind.REMINDER].done_at is None
        assert timers[TimerKind.EXPIRE].done_at is None
    # A retried job adds nothing: the opening is in the outbox already.
    assert _start(any_db_url, settings, survey_id) == []
    with transaction(any_db_url) as session:
        assert _count(session, OutboundMessage, survey_id) == 2
        assert len(_timers(session, survey_id)) == 3


def test_start_outside_the_send_window_waits_for_the_morning(
    any_db_url: str, settings: Settings, vault: PhoneVault
) -> None:
    windowed = settings.model_copy(update={"SIPAS_SEND_WINDOW": "07:30-21:00"})
    late = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # 22:00 in Ha Noi
    survey_id = _new_survey(any_db_url, vault)
    with transaction(any_db_url) as session:
        start_survey(session, windowed, survey_id, late)
        ids = write_staged(session)
    morning = datetime(2026, 3, 3, 0, 30, tzinfo=UTC)  # 07:30 next day
    with transaction(any_db_url) as session:
        assert {session.get_one(OutboundMessage, i).next_attempt_at for i in ids} == {morning}
        timers = _timers(session, survey_id)
        assert timers[TimerKind.REMINDER].due_at == morning + timedelta(hours=24)
        assert timers[TimerKind.EXPIRE].due_at == morning + timedelta(hours=72)


def test_start_survey_honours_a_refusal_made_after_scheduling(
    any_db_url: str, settings: Settings, vault: PhoneVault
) -> None:
    survey_id = _new_survey(any_db_url, vault)
    with transaction(any_db_url) as session:
        session.add(OptOut(phone_hash=vault.lookup_hash(PHONE), source="sms"))
    assert _start(any_db_url, settings, survey_id) == []
    with transaction(any_db_url) as session:
        assert session.get_one(Survey, survey_id).status is SurveyStatus.OPTED_OUT
        assert _count(session, OutboundMessage, survey_id) == 0


def test_start_survey_without_a_phone_fails_the_sms_survey(
    any_db_url: str, settings: Settings, vault: PhoneVault
) -> None:
    survey_id = _new_survey(any_db_url, vault, phone=None)
    assert _start(any_db_url, settings, survey_id) == []
    with transaction(any_db_url) as session:
        survey = session.get_one(Survey, survey_id)
        assert survey.status is SurveyStatus.FAILED
        assert survey.fallback_reason == "no sms contact on the case"


def test_full_conversation_records_answers_and_completes(
    any_db_url: str, settings: Settings, vault: PhoneVault
) -> None:
    survey_id = _new_survey(any_db_url, vault)
    _start(any_db_url, settings, survey_id)
    sent: list[list[int]] = []
    events = []
    for text in ("5", "4", " 3."):
        event_id, ids = _reply(any_db_url, settings, vault, survey_id, text)
        events.append(event_id)
        sent.append(ids)
    with transaction(any_db_url) as session:
        answers = session.scalars(
            select(Answer).where(Answer.survey_id == survey_id).order_by(Answer.id)
        ).all()
        assert [
            (a.question_key, a.criterion_code, a.value, a.raw_text, a.flow_name, a.flow_version)
            for a in answers
        ] == [
            ("overall", "overall", 5, "5", "sipas-sms", 1),
            ("cong_chuc", "cong_chuc", 4, "4", "sipas-sms", 1),
            ("ket_qua", "ket_qua", 3, "3.", "sipas-sms", 1),
        ]
        assert [a.inbound_event_id for a in answers] == events
        texts = [_texts(session, ids) for ids in sent]
        assert texts[0][0].startswith("Cau 2/3:")
        assert texts[1][0].startswith("Cau 3/3:")
        assert texts[2][0].startswith("Cam on Ong/Ba da tra loi khao sat.")
        assert [session.get_one(OutboundMessage, ids[0]).dedupe_key for ids in sent] == [
            f"survey:{survey_id}:in:{e}:0" for e in events
        ]
        survey = session.get_one(Survey, survey_id)
        assert (survey.status, survey.finished_at, survey.state_version) == (SurveyStatus.COMPLETED, NOW, 4)
        assert survey.state["events"] == events
        assert all(t.done_at is not None for t in _timers(session, survey_id).values())
        assert find_active_survey(session, Channel.SMS, vault.lookup_hash(PHONE)) is None
        assert survey.state["status"] == "done"


def test_garbage_is_reasked_once_then_skipped_and_kept_as_comments(
    any_db_url: str, settings: Settings, vault: PhoneVault
) -> None:
    survey_id = _new_survey(any_db_url, vault)
    _start(any_db_url, settings, survey_id)
    _e1, reask = _reply(any_db_url, settings, vault, survey_id, "khong biet")
    _e2, moved = _reply(any_db_url, settings, vault, survey_id, "3 hoac 4")
    with transaction(any_db_url) as session:
        assert _texts(session, reask)[0].startswith("Xin loi, chua hieu cau tra loi. Cau 1/3-5,")
        assert _texts(session, moved)[0].startswith("Cau 2/3:")
        comments = session.scalars(select(Comment).where(Comment.survey_id == survey_id).order_by(Comment.id))
        assert [(c.question_key, c.text) for c in comments] == [
            ("overall", "khong biet"),
            ("overall", "3 hoac 4"),
        ]
        assert _count(session, Answer, survey_id) == 0
        assert session.get_one(Survey, survey_id).state["question"] == "cong_chuc"


def test_the_same_inbound_event_twice_changes_nothing(
    any_db_url: str, settings: Settings, vault: PhoneVault
) -> None:
    survey_id = _new_survey(any_db_url, vault)
    _start(any_db_url, settings, survey_id)
    event_id, ids = _reply(any_db_url, settings, vault, survey_id, "5")
    with transaction(any_db_url) as session:
        survey = lock_survey(session, survey_id)
        assert survey is not None
        handle_reply(session, survey, "5", event_id, NOW)
        assert write_staged(session) == []  # applied before: nothing new to store
    assert len(ids) == 1
    with transaction(any_db_url) as session:
        assert _count(session, Answer, survey_id) == 1
        assert _count(session, OutboundMessage, survey_id) == 3
        assert session.get_one(Survey, survey_id).state_version == 2


def test_a_rolled_back_step_is_recomputed_identically(
    any_db_url: str, settings: Settings, vault: PhoneVault
) -> None:
    """A worker dies before committing: its step leaves no trace anywhere, and the retry reads the
    same state from the row and stores the very same messages."""
    survey_id = _new_survey(any_db_url, vault)
    _start(any_db_url, settings, survey_id)
    with transaction(any_db_url) as session:
        event_id = make_inbound(session, vault, "5")

    class WorkerDiedError(Exception):
        pass

    with pytest.raises(WorkerDiedError), transaction(any_db_url) as session:
        survey = session.get_one(Survey, survey_id)
        handle_reply(session, survey, "5", event_id, NOW)
        raise WorkerDiedError
    with transaction(any_db_url) as session:
        assert session.get_one(Survey, survey_id).state_version == 1
        survey = session.get_one(Survey, survey_id)
        handle_reply(session, survey, "5", event_id, NOW)
        ids = write_staged(session)
    with transaction(any_db_url) as session:
        assert _texts(session, ids)[0].startswith("Cau 2/3:")
        assert session.get_one(OutboundMessage, ids[0]).dedupe_key == f"survey:{survey_id}:in:{event_id}:0"
        assert [(a.question_key, a.value) for a in session.scalars(select(Answer))] == [("overall", 5)]


def test_two_replies_processed_at_once_answer_two_questions(
    any_db_url: str, settings: Settings, vault: PhoneVault
) -> None:
    """Two workers take two replies of one citizen at the same moment: the survey row lock makes
    them apply one after the other, never both to question 1."""
    survey_id = _new_survey(any_db_url, vault)
    _start(any_db_url, settings, survey_id)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def worker(text: str) -> None:
        try:
            barrier.wait()
            _reply(any_db_url, settings, vault, survey_id, text)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(text,)) for text in ("5", "4")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with transaction(any_db_url) as session:
        answers = session.scalars(select(Answer).where(Answer.survey_id == survey_id).order_by(Answer.id))
        assert [(a.question_key, a.value) for a in answers] in (
            [("overall", 5), ("cong_chuc", 4)],
            [("overall", 4), ("cong_chuc", 5)],
        )
        survey = session.get_one(Survey, survey_id)
        assert (survey.state_version, survey.state["question"]) == (3, "ket_qua")
        assert _count(session, OutboundMessage, survey_id) == 4


def test_redis_holds_no_conversation_and_losing_it_loses_nothing(
    any_db_url: str, redis: Redis, settings: Settings, vault: PhoneVault
) -> None:
    """The survey row is the only record: Redis flushed between two replies changes nothing."""
    survey_id = _new_survey(any_db_url, vault)
    redis.flushdb()
    _start(any_db_url, settings, survey_id)
    _reply(any_db_url, settings, vault, survey_id, "5")
    assert redis.keys("*") == []  # starting and answering wrote nothing there
    redis.flushdb()
    _e, ids = _reply(any_db_url, settings, vault, survey_id, "2")
    with transaction(any_db_url) as session:
        assert _texts(session, ids)[0].startswith("Cau 3/3:")
        answers = session.scalars(select(Answer).where(Answer.survey_id == survey_id).order_by(Answer.id))
        assert [(a.question_key, a.value) for a in answers] == [("overall", 5), ("cong_chuc", 2)]
        assert session.get_one(Survey, survey_id).state["question"] == "ket_qua"


def test_opt_out_is_recorded_and_stops_everything(
    any_db_url: str, settings: Settings, vault: PhoneVault
) -> None:
    survey_id = _new_survey(any_db_url, vault)
    _start(any_db_url, settings, survey_id)
    with transaction(any_db_url) as session:  # a second case of the same citizen, not yet asked
        other_id = scheduled_survey(session, vault).id
    _reply(any_db_url, settings, vault, survey_id, "5")
    _e, ids = _reply(any_db_url, settings, vault, survey_id, "TC")
    with transaction(any_db_url) as session:
        assert _texts(session, ids) == [
            "Da ghi nhan Ong/Ba tu choi khao sat. Chung toi se khong gui tin khao sat den so nay nua. "
            "Muon nhan lai: tra loi DK. Xin cam on."
        ]
        opt_out = session.get_one(OptOut, vault.lookup_hash(PHONE))
        assert opt_out.source == "sms"
        for sid in (survey_id, other_id):
            assert session.get_one(Survey, sid).status is SurveyStatus.OPTED_OUT
            assert all(t.done_at is not None for t in _timers(session, sid).values())
        assert _count(session, Answer, survey_id) == 1  # what was given before is kept
    assert _start(any_db_url, settings, other_id) == []


def test_opt_out_without_an_active_survey(any_db_url: str, vault: PhoneVault) -> None:
    phone_hash = vault.lookup_hash("84987654321")
    with transaction(any_db_url) as session:
        assert find_active_survey(session, Channel.SMS, phone_hash) is None
        assert record_opt_out(session, phone_hash, "sms", NOW) is True
    with transaction(any_db_url) as session:
        assert record_opt_out(session, phone_hash, "sms", NOW) is False
        assert session.get_one(OptOut, phone_hash).created_at == NOW


def test_restart_keeps_the_first_answer_and_the_change_as_a_comment(
    any_db_url: str, settings: Settings, vault: PhoneVault
) -> None:
    survey_id = _new_survey(any_db_url, vault)
    _start(any_db_url, settings, survey_id)
    for text in ("5", restart_word(), "2", "4"):
        _reply(any_db_url, settings, vault, survey_id, text)
    with transaction(any_db_url) as session:
        answers = session.scalars(select(Answer).where(Answer.survey_id == survey_id).order_by(Answer.id))
        assert [(a.question_key, a.value) for a in answers] == [("overall", 5), ("cong_chuc", 4)]
        comments = session.scalars(select(Comment).where(Comment.survey_id == survey_id))
        assert [(c.question_key, c.text) for c in comments] == [("overall", "2")]


def test_find_active_survey_picks_the_latest_active_one(
    any_db_url: str, settings: Settings, vault: PhoneVault
) -> None:
    with transaction(any_db_url) as session:
        agency = make_agency(session)
        first = scheduled_survey(session, vault, agency=agency).id
        second = scheduled_survey(session, vault, agency=agency).id
    for survey_id, at in ((second, NOW), (first, NOW + timedelta(hours=1))):
        with transaction(any_db_url) as session:
            start_survey(session, settings, survey_id, at)
    with transaction(any_db_url) as session:
        found = find_active_survey(session, Channel.SMS, vault.lookup_hash(PHONE))
        assert found is not None
        assert found.id == first
        assert find_active_survey(session, Channel.ZALO, vault.lookup_hash(PHONE)) is None
        assert find_active_survey(session, Channel.SMS, vault.lookup_hash("84900000000")) is None


def test_one_reminder_only_while_the_question_is_open(
    any_db_url: str, settings: Settings, vault: PhoneVault
) -> None:
    survey_id = _new_survey(any_db_url, vault)
    _start(any_db_url, settings, survey_id)
    _reply(any_db_url, settings, vault, survey_id, "5")
    later = NOW + timedelta(hours=24)
    with transaction(any_db_url) as session:
        send_reminder(session, settings, survey_id, later)
        ids = write_staged(session)
    with transaction(any_db_url) as session:
        (text,) = _texts(session, ids)
        assert text.startswith(f"Nhac lai: {LONGEST_AGENCY_SMS} mong Ong/Ba tra loi cau 2/3 ve ho so")
        assert session.get_one(OutboundMessage, ids[0]).dedupe_key == f"survey:{survey_id}:reminder"
        assert _timers(session, survey_id)[TimerKind.REMINDER].done_at == later
        send_reminder(session, settings, survey_id, later)
        assert write_staged(session) == []  # reminded once only
    with transaction(any_db_url) as session:
        assert _count(session, OutboundMessage, survey_id) == 4  # 2 opening + Q2 + 1 reminder


def test_no_reminder_for_a_finished_survey(any_db_url: str, settings: Settings, vault: PhoneVault) -> None:
    survey_id = _new_survey(any_db_url, vault)
    with transaction(any_db_url) as session:
        send_reminder(session, settings, survey_id, NOW)
        assert write_staged(session) == []  # not started yet
    _start(any_db_url, settings, survey_id)
    for text in ("5", "5", "5"):
        _reply(any_db_url, settings, vault, survey_id, text)
    with transaction(any_db_url) as session:
        send_reminder(session, settings, survey_id, NOW + timedelta(hours=24))
        assert write_staged(session) == []
        assert _count(session, OutboundMessage, survey_id) == 5


def test_expiry_keeps_partial_answers_and_ignores_later_replies(
    any_db_url: str, settings: Settings, vault: PhoneVault
) -> None:
    survey_id = _new_survey(any_db_url, vault)
    _start(any_db_url, settings, survey_id)
    _reply(any_db_url, settings, vault, survey_id, "4")
    with transaction(any_db_url) as session:
        assert expire_survey(session, survey_id, NOW + timedelta(hours=72)) is True
    with transaction(any_db_url) as session:
        survey = session.get_one(Survey, survey_id)
        assert survey.status is SurveyStatus.EXPIRED
        assert survey.state["status"] == "expired"
        assert _count(session, Answer, survey_id) == 1
        assert all(t.done_at is not None for t in _timers(session, survey_id).values())
        assert expire_survey(session, survey_id, NOW + timedelta(hours=73)) is False
        assert find_active_survey(session, Channel.SMS, vault.lookup_hash(PHONE)) is None
        # A reply racing the expiry (survey found just before) is not applied.
        handle_reply(session, survey, "5", None, NOW + timedelta(hours=73))
        assert write_staged(session) == []
        assert _count(session, Answer, survey_id) == 1


def test_a_scheduled_survey_can_expire_unasked(any_db_url: str, vault: PhoneVault) -> None:
    survey_id = _new_survey(any_db_url, vault)
    with transaction(any_db_url) as session:
        assert expire_survey(session, survey_id, NOW) is True
        assert session.get_one(Survey, survey_id).status is SurveyStatus.EXPIRED
