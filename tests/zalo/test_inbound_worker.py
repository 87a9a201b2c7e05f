"""The inbound job on Zalo events (stored as the webhooks store them), with the real database and
Redis and the simulated Zalo over HTTP for the replies: the bot conversation from the start code
to the thanks, ZNS ratings, OA replies, receipts, and what is said to strangers."""

from __future__ import annotations

from sqlalchemy import func, select

from bot.channels.zalo import texts
from bot.channels.zalo.simulator.citizen import (
    BOT_IMAGE,
    BOT_UNSUPPORTED,
    bot_update,
    feedback_event,
    oa_text_event,
)
from bot.channels.zalo.simulator.threaded import ThreadedSimulator
from flows.routes import START_CODE_ALPHABET
from storage.models import (
    Answer,
    Channel,
    Comment,
    OptOut,
    OutboxStatus,
    Route,
    Survey,
    SurveyStatus,
)
from tests.zalo.world import case, handle, make_agencies, outbox, send, start, store_bot, store_oa, submit
from workers.inbound import process
from workers.runtime import Runtime
from workers.zalo_inbound import MAX_CODE_ATTEMPTS

PHONE = "0912345678"


def _survey(runtime: Runtime, survey_id: int) -> Survey:
    with runtime.sessions() as session:
        survey = session.get(Survey, survey_id)
        assert survey is not None
        return survey


def _answers(runtime: Runtime, survey_id: int) -> dict[str, int | str | None]:
    with runtime.sessions() as session:
        rows = session.scalars(select(Answer).where(Answer.survey_id == survey_id)).all()
        return {a.question_key: a.value if a.value is not None else a.text_value for a in rows}


def _zns_survey(runtime: Runtime, case_id: str) -> tuple[int, str]:
    """A zalo_first case with a phone whose ZNS rating went out: (survey id, its start code)."""
    make_agencies(runtime)
    survey_id = submit(runtime, case(case_id, phone=PHONE))
    assert send(runtime, start(runtime, survey_id)) == ["sent"]
    code = _survey(runtime, survey_id).start_code
    assert code is not None
    return survey_id, code


def test_citizen_takes_the_survey_to_the_bot_and_finishes_it(
    zalo_runtime: Runtime, threaded_zalo: ThreadedSimulator
) -> None:
    survey_id, code = _zns_survey(zalo_runtime, "BOT-1")
    bot = threaded_zalo.sim.bot_sent

    result, sent = handle(zalo_runtime, store_bot(zalo_runtime, bot_update("chat-1", f"Mã {code.lower()}")))
    assert result == f"linked survey {survey_id}"
    assert sent == ["sent", "sent"]
    assert "BOT-1" in bot[0]["text"]
    assert "TC" in bot[0]["text"]
    assert bot[1]["text"].startswith("Câu 1/")
    assert {m["chat_id"] for m in bot} == {"chat-1"}
    survey = _survey(zalo_runtime, survey_id)
    assert (survey.channel, survey.zalo_route) == (Channel.ZALO, Route.ZALO_BOT)

    # Rất hài lòng, then 4, 2 (low: the flow asks which element to improve), element 3,
    # a comment, and "no" to the integrity question.
    for reply in ("Rất hài lòng", "4", "2", "3", "Cán bộ nhiệt tình nhưng phải chờ lâu", "1"):
        before = len(bot)
        result, sent = handle(zalo_runtime, store_bot(zalo_runtime, bot_update("chat-1", reply)))
        assert result == f"survey {survey_id}", reply
        assert sent
        assert all(s == "sent" for s in sent)
        assert len(bot) > before
    assert bot[-1]["text"].startswith("Cảm ơn Ông/Bà")
    survey = _survey(zalo_runtime, survey_id)
    assert survey.status is SurveyStatus.COMPLETED
    answers = _answers(zalo_runtime, survey_id)
    assert answers["overall"] == 5
    assert answers["cong_chuc"] == 4
    assert answers["ket_qua"] == 2
    assert all(row.route in (Route.ZNS, Route.ZALO_BOT) for row in outbox(zalo_runtime, survey_id))

    # After the thanks a chatty citizen costs nothing and changes nothing.
    before = len(bot)
    result, sent = handle(zalo_runtime, store_bot(zalo_runtime, bot_update("chat-1", "ok cảm ơn")))
    assert result == f"survey {survey_id} is over"
    assert sent == []
    assert len(bot) == before


def test_the_same_bot_message_is_processed_once(
    zalo_runtime: Runtime, threaded_zalo: ThreadedSimulator
) -> None:
    survey_id, code = _zns_survey(zalo_runtime, "BOT-DUP")
    handle(zalo_runtime, store_bot(zalo_runtime, bot_update("chat-2", code)))
    update = bot_update("chat-2", "5", message_id="same-message-id")
    first = store_bot(zalo_runtime, update)
    again = store_bot(zalo_runtime, update)  # getUpdates or a webhook retry brings it twice
    assert first == again
    assert handle(zalo_runtime, first)[0] == f"survey {survey_id}"
    assert process(zalo_runtime, again) == ("already processed", [])
    assert _answers(zalo_runtime, survey_id) == {"overall": 5}


def test_rating_then_bot_continues_after_the_rated_question(
    zalo_runtime: Runtime, threaded_zalo: ThreadedSimulator
) -> None:
    survey_id, code = _zns_survey(zalo_runtime, "RATE-BOT")
    sim = threaded_zalo.sim
    msg_id = sim.zns_sent[0]["msg_id"]
    event = sim.add_rating(msg_id, 4, note="Thủ tục nhanh gọn")
    result, sent = handle(zalo_runtime, store_oa(zalo_runtime, event))
    assert result == f"survey {survey_id}: rating 4 recorded"
    assert sent == []
    assert _answers(zalo_runtime, survey_id) == {"overall": 4}
    with zalo_runtime.sessions() as session:
        comments = session.scalars(select(Comment.text).where(Comment.survey_id == survey_id)).all()
    assert comments == ["Thủ tục nhanh gọn"]

    handle(zalo_runtime, store_bot(zalo_runtime, bot_update("chat-3", code)))
    assert sim.bot_sent[1]["text"].startswith("Câu 2/"), sim.bot_sent[1]["text"]


def test_rating_recorded_once_even_when_it_comes_back(
    zalo_runtime: Runtime, threaded_zalo: ThreadedSimulator
) -> None:
    survey_id, _code = _zns_survey(zalo_runtime, "RATE-ONCE")
    msg_id = threaded_zalo.sim.zns_sent[0]["msg_id"]
    event = threaded_zalo.sim.add_rating(msg_id, 5)
    first = store_oa(zalo_runtime, event)
    assert store_oa(zalo_runtime, event) == first
    handle(zalo_runtime, first)
    # The same stars under another event id (e.g. typed in by an operator) change nothing either.
    other = feedback_event("app", "oa", "other-msg", 5, tracking_id=str(survey_id))
    assert (
        handle(zalo_runtime, store_oa(zalo_runtime, other))[0]
        == f"survey {survey_id}: rating already recorded"
    )
    changed = feedback_event("app", "oa", "third-msg", 2, tracking_id=str(survey_id))
    assert "kept as comment" in handle(zalo_runtime, store_oa(zalo_runtime, changed))[0]
    assert _answers(zalo_runtime, survey_id) == {"overall": 5}


def test_rating_for_an_unknown_survey_is_reported(zalo_runtime: Runtime) -> None:
    event = feedback_event("app", "oa", "nobody", 3, tracking_id="999999")
    result, _ = handle(zalo_runtime, store_oa(zalo_runtime, event))
    assert result == "rating for unknown survey (tracking_id '999999')"


def test_wrong_codes_are_answered_then_refused(
    zalo_runtime: Runtime, threaded_zalo: ThreadedSimulator
) -> None:
    for n in range(MAX_CODE_ATTEMPTS):
        guess = f"QWE{START_CODE_ALPHABET[n]}34"
        result, _ = handle(zalo_runtime, store_bot(zalo_runtime, bot_update("guesser", guess)))
        assert result == "unknown code"
    result, _ = handle(zalo_runtime, store_bot(zalo_runtime, bot_update("guesser", "ZZZZZZ")))
    assert result == "too many wrong codes"
    bot = threaded_zalo.sim.bot_sent
    assert bot[0]["text"] == texts.CODE_NOT_FOUND.format(code="QWEA34")
    assert bot[-1]["text"] == texts.TOO_MANY_CODES


def test_strangers_are_greeted_and_images_explained(
    zalo_runtime: Runtime, threaded_zalo: ThreadedSimulator
) -> None:
    assert handle(zalo_runtime, store_bot(zalo_runtime, bot_update("new", "xin chào")))[0] == "greeted"
    assert (
        handle(zalo_runtime, store_bot(zalo_runtime, bot_update("new", "TC")))[0] == "keyword without survey"
    )
    survey_id, code = _zns_survey(zalo_runtime, "IMG-1")
    handle(zalo_runtime, store_bot(zalo_runtime, bot_update("pic", code)))
    result, _ = handle(zalo_runtime, store_bot(zalo_runtime, bot_update("pic", event_name=BOT_IMAGE)))
    assert result == f"survey {survey_id}: not text"
    texts_sent = [m["text"] for m in threaded_zalo.sim.bot_sent]
    assert texts_sent[0] == texts.WELCOME
    assert texts_sent[-1] == texts.NOT_TEXT


def test_unreadable_bot_messages_move_the_survey_to_sms(
    zalo_runtime: Runtime, threaded_zalo: ThreadedSimulator
) -> None:
    survey_id, code = _zns_survey(zalo_runtime, "PROT-1")
    handle(zalo_runtime, store_bot(zalo_runtime, bot_update("protected", code)))
    result, ids = process(
        zalo_runtime, store_bot(zalo_runtime, bot_update("protected", event_name=BOT_UNSUPPORTED))
    )
    assert result == f"survey {survey_id} moved to sms"
    assert len(ids) == 3  # the explanation on Zalo, then the opening and the question by SMS
    assert send(zalo_runtime, ids[:1]) == ["sent"]
    assert threaded_zalo.sim.bot_sent[-1]["text"] == texts.UNSUPPORTED_MOVED_TO_SMS
    survey = _survey(zalo_runtime, survey_id)
    assert survey.channel is Channel.SMS
    assert "unsupported" in (survey.fallback_reason or "")
    # A stranger's unreadable message only gets the explanation.
    result, _ = handle(zalo_runtime, store_bot(zalo_runtime, bot_update("other", event_name=BOT_UNSUPPORTED)))
    assert result == "unsupported message explained"
    assert threaded_zalo.sim.bot_sent[-1]["text"] == texts.UNSUPPORTED


def test_oa_replies_run_the_survey_and_strangers_are_left_to_staff(
    zalo_runtime: Runtime, threaded_zalo: ThreadedSimulator
) -> None:
    make_agencies(zalo_runtime)
    survey_id = submit(zalo_runtime, case("OA-RUN", zalo_user_id="oa-u1"))
    send(zalo_runtime, start(zalo_runtime, survey_id))
    app, oa = threaded_zalo.sim.config.app_id, threaded_zalo.sim.config.oa_id
    result, sent = handle(zalo_runtime, store_oa(zalo_runtime, oa_text_event(app, oa, "oa-u1", "5")))
    assert (result, sent) == (f"survey {survey_id}", ["sent"])
    assert threaded_zalo.sim.oa_sent[-1]["text"].startswith("Câu 2/")
    # Someone else writing to the agency's OA is not answered by the survey: the message is kept
    # in the staff inbox (flows.inbox).
    assert handle(
        zalo_runtime, store_oa(zalo_runtime, oa_text_event(app, oa, "oa-x", "Cho hỏi giờ làm việc?"))
    )[0].startswith("inbox ")
    result, _ = handle(zalo_runtime, store_oa(zalo_runtime, oa_text_event(app, oa, "oa-x", "TC")))
    assert result == "opt-out without active survey"
    with zalo_runtime.sessions() as session:
        assert session.get(OptOut, zalo_runtime.vault.lookup_hash("oa-x")) is not None


def test_oa_refusal_is_kept_for_the_zalo_identity(
    zalo_runtime: Runtime, threaded_zalo: ThreadedSimulator
) -> None:
    make_agencies(zalo_runtime)
    survey_id = submit(zalo_runtime, case("OA-TC", zalo_user_id="oa-u2"))
    send(zalo_runtime, start(zalo_runtime, survey_id))
    app, oa = threaded_zalo.sim.config.app_id, threaded_zalo.sim.config.oa_id
    handle(zalo_runtime, store_oa(zalo_runtime, oa_text_event(app, oa, "oa-u2", "TC")))
    assert _survey(zalo_runtime, survey_id).status is SurveyStatus.OPTED_OUT
    with zalo_runtime.sessions() as session:
        assert session.get(OptOut, zalo_runtime.vault.lookup_hash("oa-u2")) is not None


def test_receipt_marks_the_message_delivered(zalo_runtime: Runtime, threaded_zalo: ThreadedSimulator) -> None:
    survey_id, _code = _zns_survey(zalo_runtime, "RCPT-1")
    msg_id = threaded_zalo.sim.zns_sent[0]["msg_id"]
    receipt = {
        "app_id": threaded_zalo.sim.config.app_id,
        "event_name": "user_received_message",
        "sender": {"id": threaded_zalo.sim.config.oa_id},
        "recipient": {"id": "zns-user"},
        "message": {"msg_id": msg_id},
        "timestamp": "1700000000000",
    }
    assert handle(zalo_runtime, store_oa(zalo_runtime, receipt))[0] == "delivered"
    [row] = outbox(zalo_runtime, survey_id)
    assert row.status is OutboxStatus.DELIVERED


def test_an_unreadable_event_is_settled_not_retried(zalo_runtime: Runtime) -> None:
    bad = feedback_event("app", "oa", "m-bad", 3)
    bad["message"]["rate"] = 9  # out of range: refused by the model
    event_id = store_oa(zalo_runtime, bad)
    assert process(zalo_runtime, event_id) == ("unreadable user_feedback", [])
    assert process(zalo_runtime, event_id) == ("already processed", [])
    with zalo_runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Answer)) == 0
