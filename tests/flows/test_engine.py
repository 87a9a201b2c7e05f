"""The pure conversation engine over the shipped SMS flow: every rule of docs/flows.md."""

from __future__ import annotations

import pytest

from flows.engine import Conversation, ConversationState, ConversationStatus, RecordedComment, Step
from flows.loading import default_flow
from flows.understanding import Keyword
from tests.flows.factories import LONGEST_AGENCY, LONGEST_AGENCY_SMS, LONGEST_CASE_ID, restart_word

VALUES = {"agency": LONGEST_AGENCY, "case_id": LONGEST_CASE_ID}
SCALE_VI = "1 Rat khong hai long, 2 Khong hai long, 3 Binh thuong, 4 Hai long, 5 Rat hai long"


def _conversation(language: str = "vi") -> Conversation:
    return Conversation(default_flow("sipas-sms"), language, VALUES)


def _where(state: ConversationState) -> tuple[ConversationStatus, str | None, int, int]:
    """Status, question, re-asks and version: what the rules below are about."""
    return state.status, state.question, state.reprompts, state.version


def _run(conversation: Conversation, *replies: str) -> tuple[ConversationState, list[Step]]:
    state = conversation.open().state
    steps = []
    for reply in replies:
        step = conversation.reply(state, reply)
        steps.append(step)
        state = step.state
    return state, steps


def test_open_sends_the_notice_then_the_first_question() -> None:
    step = _conversation().open()
    assert step.messages == (
        f"{LONGEST_AGENCY_SMS} moi Ong/Ba gop y ve ho so {LONGEST_CASE_ID}: 3-5 cau, tu nguyen, bao mat. "
        "Tu choi: tra loi TC",
        f"Cau 1/3-5: Ong/Ba hai long the nao ve viec giai quyet ho so? Tra loi 1 so: {SCALE_VI}",
    )
    assert _where(step.state) == (ConversationStatus.ASKING, "overall", 0, 1)


def test_full_path_records_three_answers_and_thanks() -> None:
    state, steps = _run(_conversation(), "5", "4", " 3.")
    assert [(a.question_key, a.criterion, a.value, a.raw_text) for s in steps for a in s.answers] == [
        ("overall", "overall", 5, "5"),
        ("cong_chuc", "cong_chuc", 4, "4"),
        ("ket_qua", "ket_qua", 3, "3."),
    ]
    assert steps[0].messages[0].startswith("Cau 2/3: Ong/Ba hai long ve cong chuc")
    assert steps[1].messages[0].startswith("Cau 3/3: Ong/Ba hai long ve ket qua")
    assert steps[2].messages == (
        f"Cam on Ong/Ba da tra loi khao sat. Y kien cua Ong/Ba giup {LONGEST_AGENCY_SMS} phuc vu tot hon.",
    )
    assert _where(state) == (ConversationStatus.DONE, None, 0, 4)
    assert all(not s.comments for s in steps)


def test_not_understood_reasks_once_then_moves_on_keeping_the_text() -> None:
    state, (first, second, third) = _run(_conversation(), "khong biet", "3 hoac 4", "5")
    assert first.answers == ()
    assert first.comments == (RecordedComment("overall", "khong biet"),)
    assert first.messages == (
        f"Xin loi, chua hieu cau tra loi. Cau 1/3-5, vui long tra loi 1 so: {SCALE_VI}",
    )
    assert first.state.question == "overall"
    assert first.state.reprompts == 1
    assert second.answers == ()
    assert second.comments == (RecordedComment("overall", "3 hoac 4"),)
    assert second.messages[0].startswith("Cau 2/3:")
    assert _where(second.state) == (ConversationStatus.ASKING, "cong_chuc", 0, 3)
    assert [(a.question_key, a.value) for a in third.answers] == [("cong_chuc", 5)]
    assert state.question == "ket_qua"


def test_reask_count_is_per_question() -> None:
    _state, steps = _run(_conversation(), "abc", "5", "hmm")
    assert steps[0].state.reprompts == 1
    assert steps[1].state.reprompts == 0
    assert steps[2].state.question == "cong_chuc"
    assert steps[2].state.reprompts == 1


def test_empty_reply_is_reasked_without_a_comment() -> None:
    _state, (step,) = _run(_conversation(), "   ")
    assert step.comments == ()
    assert step.messages[0].startswith("Xin loi, chua hieu")


@pytest.mark.parametrize("answered", [0, 1, 2])
@pytest.mark.parametrize("word", ["TC", "stop", " tc. "])
def test_opt_out_works_at_any_point(answered: int, word: str) -> None:
    state, steps = _run(_conversation(), *["5"] * answered, word)
    assert _where(state) == (ConversationStatus.OPTED_OUT, None, 0, answered + 2)
    assert steps[-1].keyword is Keyword.OPT_OUT
    assert steps[-1].answers == ()
    assert steps[-1].comments == ()
    assert steps[-1].messages == (
        "Da ghi nhan Ong/Ba tu choi khao sat. Chung toi se khong gui tin khao sat den so nay nua. "
        "Muon nhan lai: tra loi DK. Xin cam on.",
    )


def test_opt_out_after_a_reprompt() -> None:
    state, _ = _run(_conversation(), "abc", "TC")
    assert state.status is ConversationStatus.OPTED_OUT


def test_help_answers_and_keeps_the_question() -> None:
    state, (_a, help_step, _b) = _run(_conversation(), "5", "HD", "4")
    assert help_step.keyword is Keyword.HELP
    assert help_step.messages == (f"Khao sat SIPAS, cau 2/3: {SCALE_VI}. Tu choi: tra loi TC",)
    assert help_step.state.question == "cong_chuc"
    assert help_step.answers == ()
    assert state.question == "ket_qua"


def test_help_does_not_use_up_the_reask() -> None:
    _state, steps = _run(_conversation(), "xyz", "?", "xyz")
    assert steps[1].state.reprompts == 1
    assert steps[2].state.question == "cong_chuc"  # the one re-ask was spent before help


def test_restart_goes_back_to_the_first_question() -> None:
    state, steps = _run(_conversation(), "5", "4", restart_word(), "2")
    restart = steps[2]
    assert restart.keyword is Keyword.RESTART
    assert restart.answers == ()
    assert restart.messages[0].startswith("Cau 1/3-5:")
    assert _where(restart.state) == (ConversationStatus.ASKING, "overall", 0, 4)
    assert [(a.question_key, a.value) for a in steps[3].answers] == [("overall", 2)]
    assert state.question == "cong_chuc"


def test_after_the_end_only_opt_out_is_answered() -> None:
    conversation = _conversation()
    done, _ = _run(conversation, "5", "5", "5")
    late = conversation.reply(done, "cam on, nhung hoi cham")
    assert late.messages == ()
    assert late.comments == (RecordedComment(None, "cam on, nhung hoi cham"),)
    assert late.state.status is ConversationStatus.DONE
    refused = conversation.reply(done, "TC")
    assert refused.state.status is ConversationStatus.OPTED_OUT
    assert len(refused.messages) == 1
    again = conversation.reply(refused.state, "TC")
    assert again.messages == ()
    assert again.state.status is ConversationStatus.OPTED_OUT


def test_english_conversation() -> None:
    conversation = _conversation("en")
    opening = conversation.open()
    assert opening.messages[0].endswith("3-5 questions, voluntary, private. Reply TC to refuse")
    assert opening.messages[1].startswith("Q1/3-5: How satisfied")
    state, steps = _run(conversation, "5", "1", "2")
    assert steps[-1].messages[0].startswith("Thank you for answering the survey.")
    assert state.status is ConversationStatus.DONE


def test_reminder_names_the_pending_question() -> None:
    conversation = _conversation()
    state, _ = _run(conversation, "4")
    assert conversation.reminder(state) == (
        f"Nhac lai: {LONGEST_AGENCY_SMS} mong Ong/Ba tra loi cau 2/3 ve ho so {LONGEST_CASE_ID}. "
        "Tu choi: tra loi TC"
    )
    done, _ = _run(conversation, "4", "4", "4")
    assert conversation.reminder(done) is None


def test_step_json_is_the_simulate_line() -> None:
    _state, (answered, garbage) = _run(_conversation(), "5", "xyz abc")
    assert answered.to_json() == {
        "reply": "5",
        "understood": True,
        "question": "overall",
        "value": 5,
        "keyword": None,
        "reason": None,
        "messages": [answered.messages[0]],
        "state": "cong_chuc",
    }
    line = garbage.to_json()
    assert (line["understood"], line["value"], line["state"], line["question"]) == (
        False,
        None,
        "cong_chuc",
        "cong_chuc",
    )
    assert line["reason"]
    _s, (opted,) = _run(_conversation(), "TC")
    assert (opted.to_json()["keyword"], opted.to_json()["state"]) == ("opt_out", "opted_out")


def test_state_round_trips_and_rejects_garbage() -> None:
    state = ConversationState(ConversationStatus.ASKING, "cong_chuc", 1, 7)
    assert ConversationState.from_dict(state.to_dict()) == state
    assert ConversationState.from_dict({**state.to_dict(), "events": [1, 2]}) == state
    for bad in ({}, {"status": "asking", "version": 1}, {"status": "nope", "version": 1}, {"status": "done"}):
        assert ConversationState.from_dict(bad) is None
