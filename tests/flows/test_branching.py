"""The engine on flows that branch, offer choices, ask yes/no and free text, take several answers in
one SMS, and render per channel: the rules of docs/flows.md beyond the plain 1-5 questions."""

from __future__ import annotations

import copy
import unicodedata
from pathlib import Path
from typing import Any

import pytest
import yaml

from flows.definition import MAX_VISITS, Flow
from flows.engine import Conversation, ConversationState, ConversationStatus, RecordedComment, Step
from flows.loading import check_source, default_flow, load_flow
from storage.models import Channel
from tests.flows.factories import restart_word

DATA = Path(__file__).parent / "data"
VALUES = {"agency": "UBND phường Thanh Xuân", "case_id": "HD-2026-1"}


def _run(conversation: Conversation, *replies: str) -> tuple[ConversationState, list[Step]]:
    state = conversation.open().state
    steps = []
    for reply in replies:
        step = conversation.reply(state, reply)
        steps.append(step)
        state = step.state
    return state, steps


def _answers(steps: list[Step]) -> list[tuple[str, int | str | None, str | None]]:
    return [
        (a.question_key, a.value if a.value is not None else a.text_value, a.criterion)
        for step in steps
        for a in step.answers
    ]


def _flow_from(data: dict[str, Any]) -> Flow:
    report = check_source(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), "test.yaml")
    assert report.flow is not None, report.describe()
    return report.flow


def _sms(language: str = "vi") -> Conversation:
    return Conversation(default_flow("sipas-sms"), language, VALUES)


def test_overall_low_asks_the_worst_element_and_a_comment() -> None:
    state, steps = _run(_sms(), "2", "4", "3", "2", "Phải đi lại 3 lần mới xong")
    assert [s.messages[0][:8] for s in steps[:4]] == ["Cau 2/5:", "Cau 3/5:", "Cau 4/5:", "Cau 5/5 "]
    assert steps[2].messages[0] == (
        "Cau 4/5: Ong/Ba chua hai long nhat ve khau nao? Tra loi 1 so: 1 Tiep can dich vu, "
        "2 Thu tuc hanh chinh, 3 Cong chuc, 4 Ket qua, 5 Gop y, phan anh"
    )
    assert _answers(steps) == [
        ("overall", 2, "overall"),
        ("cong_chuc", 4, "cong_chuc"),
        ("ket_qua", 3, "ket_qua"),
        ("worst_element", 2, None),  # a choice is kept, not scored
        ("comment", "Phải đi lại 3 lần mới xong", None),
    ]
    assert steps[-1].messages[0].startswith("Cam on Ong/Ba")
    assert state.status is ConversationStatus.DONE
    assert state.path == ("overall", "cong_chuc", "ket_qua", "worst_element", "comment")
    assert state.answers == {"overall": 2, "cong_chuc": 4, "ket_qua": 3, "worst_element": 2}


def test_overall_high_skips_the_branch() -> None:
    state, steps = _run(_sms(), "5", "4", "3")
    assert [s.messages[0][:8] for s in steps[:2]] == ["Cau 2/3:", "Cau 3/3:"]
    assert steps[-1].messages[0].startswith("Cam on Ong/Ba")
    assert [a[0] for a in _answers(steps)] == ["overall", "cong_chuc", "ket_qua"]
    assert state.status is ConversationStatus.DONE


def test_the_boundary_of_the_branch_is_overall_3() -> None:
    _state, steps = _run(_sms(), "3", "3", "3")
    assert steps[-1].state.question == "worst_element"
    _state, steps = _run(_sms(), "4", "3", "3")
    assert steps[-1].state.status is ConversationStatus.DONE


def test_unanswered_overall_does_not_open_the_branch() -> None:
    """Conditions on an unanswered question do not hold: no number is guessed for branching."""
    state, steps = _run(_sms(), "abc", "xyz", "2", "2")
    assert steps[1].state.question == "cong_chuc"
    assert state.status is ConversationStatus.DONE


def test_optional_comment_is_skipped_with_no() -> None:
    for skip in ("khong", "Không", "ko", "0", "no"):
        state, steps = _run(_sms(), "1", "1", "1", "5", skip)
        last = steps[-1]
        assert last.skipped, skip
        assert (last.answers, last.comments) == ((), ())
        assert last.to_json()["reason"] == "skipped"
        assert state.status is ConversationStatus.DONE


def test_free_text_is_stored_nfc_with_the_raw_reply() -> None:
    decomposed = unicodedata.normalize("NFD", "Cán bộ  nhiệt tình")
    _state, steps = _run(_sms(), "1", "1", "1", "1", decomposed)
    [answer] = steps[-1].answers
    assert answer.text_value == "Cán bộ nhiệt tình"
    assert unicodedata.is_normalized("NFC", answer.raw_text)
    assert answer.raw_text == unicodedata.normalize("NFC", decomposed)


def test_a_number_with_words_is_recorded_and_the_words_kept_as_a_comment() -> None:
    _state, (step,) = _run(_sms(), "5, can bo nhiet tinh")
    assert _answers([step]) == [("overall", 5, "overall")]
    assert step.comments == (RecordedComment("overall", "5, can bo nhiet tinh"),)


def test_choice_out_of_its_options_is_not_understood() -> None:
    flow = load_flow(DATA / "valid-branching.yaml")
    conversation = Conversation(flow, "vi", VALUES)
    _state, steps = _run(conversation, "1", "1", "5", "ket qua")
    assert steps[2].answers == ()
    assert steps[2].to_json()["reason"] == "out_of_range"
    assert steps[2].messages == ("Chua hieu. Cau 3/4: 1 Thu tuc, 2 Can bo, 3 Ket qua",)
    assert _answers(steps[3:]) == [("worst", 3, None)]  # picked by its label


def test_several_answers_in_one_sms() -> None:
    flow = load_flow(DATA / "valid-multi.yaml")
    for reply in ("5 4 5", "5,4,5", "5 - 4 - 5"):
        conversation = Conversation(flow, "vi", VALUES)
        state, (step,) = _run(conversation, reply)
        assert _answers([step]) == [
            ("overall", 5, "overall"),
            ("cong_chuc", 4, "cong_chuc"),
            ("ket_qua", 5, "ket_qua"),
        ], reply
        assert state.question == "on_time"
        assert state.path == ("overall", "cong_chuc", "ket_qua", "on_time")
        assert step.messages == ("Dung hen? 1 Co, 2 Khong",)
        line = step.to_json()
        assert (line["question"], line["value"]) == ("overall", 5)
        assert line["answers"] == {"overall": 5, "cong_chuc": 4, "ket_qua": 5}


def test_fewer_answers_than_allowed_answer_the_first_ones() -> None:
    conversation = Conversation(load_flow(DATA / "valid-multi.yaml"), "vi", VALUES)
    state, (step,) = _run(conversation, "5 4")
    assert _answers([step]) == [("overall", 5, "overall"), ("cong_chuc", 4, "cong_chuc")]
    assert state.question == "ket_qua"
    assert "answers" in step.to_json()
    state, (_first, second) = _run(conversation, "5", "4 3")  # cong_chuc allows 2
    assert _answers([second]) == [("cong_chuc", 4, "cong_chuc"), ("ket_qua", 3, "ket_qua")]
    assert state.question == "on_time"


def test_more_answers_than_allowed_are_not_understood() -> None:
    conversation = Conversation(load_flow(DATA / "valid-multi.yaml"), "vi", VALUES)
    _state, (too_many, single) = _run(conversation, "5 4 5 1", "5")
    assert too_many.answers == ()
    assert too_many.to_json()["reason"] == "too_many_answers"
    assert too_many.comments == (RecordedComment("overall", "5 4 5 1"),)
    assert too_many.messages == ("Chua hieu. Cau 1: 1-5",)
    assert _answers([single]) == [("overall", 5, "overall")]
    _state, (on_single,) = _run(Conversation(load_flow(DATA / "valid-branching.yaml"), "vi", VALUES), "5 4")
    assert on_single.answers == ()  # max_answers 1: never spread over questions


def test_several_answers_stop_at_a_question_of_another_kind() -> None:
    data = yaml.safe_load((DATA / "valid-multi.yaml").read_text(encoding="utf-8"))
    data["questions"][2].update(kind="yesno")
    del data["questions"][2]["criterion"]
    conversation = Conversation(_flow_from(data), "vi", VALUES)
    _state, (step,) = _run(conversation, "5 4 1")
    assert step.answers == ()
    assert step.to_json()["reason"] == "too_many_answers"


def test_yes_no_with_the_official_digits() -> None:
    """sipas-zalo offers "1 Khong, 2 Co"; the value recorded is yes = 1, no = 2 (contract.md)."""
    conversation = Conversation(default_flow("sipas-zalo"), "vi", VALUES)
    for reply, value in (("1", 2), ("2", 1), ("không", 2), ("có", 1), ("Co, bi doi tien", 1)):
        _state, steps = _run(conversation, "5", "5", "5", "1", "khong", reply)
        assert steps[-1].state.status is ConversationStatus.DONE, reply
        assert _answers(steps[-1:]) == [("nhung_nhieu", value, "integrity.nhung_nhieu")], reply


def test_next_rules_jump_and_a_loop_ends_after_max_visits() -> None:
    data = yaml.safe_load((DATA / "valid-branching.yaml").read_text(encoding="utf-8"))
    data["scales"]["yesno"] = {"vi": "1 Dung, 2 Sai", "en": "1 Right, 2 Wrong"}
    data["questions"].insert(
        2,
        {
            "key": "confirm",
            "kind": "yesno",
            "text": {"vi": "Dung chua? {scale}", "en": "Right? {scale}"},
            "next": [
                {"when": {"question": "confirm", "in": [2]}, "goto": "overall"},
                {"when": {"question": "overall", "min": 4}, "goto": "end"},
            ],
        },
    )
    conversation = Conversation(_flow_from(data), "vi", VALUES)
    state, steps = _run(conversation, "2", "2", "2")  # overall 2, staff 2, "wrong": again
    assert state.question == "overall"
    # Honest count: the citizen may go round the loop once more (MAX_VISITS), so 6 to 11.
    assert steps[-1].messages == ("Cau 4/6-11: hai long? 1 Rat kem ... 5 Rat tot",)
    state, _ = _run(conversation, "5", "5", "1")  # confirmed, overall 5: straight to the end
    assert state.status is ConversationStatus.DONE
    state, _ = _run(conversation, "2", "2", "1", "1")  # confirmed, overall 2: the branch
    assert state.question == "comment"
    # A citizen who keeps saying "wrong" is not asked forever.
    replies = ["2", "2", "2"] * MAX_VISITS
    state, steps = _run(conversation, *replies)
    assert state.status is ConversationStatus.DONE
    assert state.path.count("overall") == MAX_VISITS
    assert steps[-1].messages == ("Cam on",)


def test_restart_forgets_the_branching_answers() -> None:
    state, steps = _run(_sms(), "2", restart_word(), "5", "5", "5")
    assert steps[1].state.answers == {}
    assert steps[1].state.path == ("overall",)
    assert state.status is ConversationStatus.DONE  # overall 5 the second time: no branch


def test_reminder_numbers_follow_the_branch() -> None:
    conversation = _sms()
    state, _ = _run(conversation, "2", "2", "2")
    assert conversation.reminder(state) == (
        "Nhac lai: UBND phuong Thanh Xuan mong Ong/Ba tra loi cau 4/5 ve ho so HD-2026-1. Tu choi: tra loi TC"
    )


@pytest.mark.parametrize(
    ("channel", "starts"), [(Channel.ZALO, "Câu 1/6: Nói chung"), (Channel.SMS, "Cau 1/6:")]
)
def test_the_channel_chooses_the_text_variant(channel: Channel, starts: str) -> None:
    step = Conversation(default_flow("sipas-zalo"), "vi", VALUES, channel).open()
    assert step.messages[1].startswith(starts)
    if channel is Channel.ZALO:
        assert step.messages[0].startswith("UBND phường Thanh Xuân trân trọng mời Ông/Bà")
    else:
        assert step.messages[0].startswith("UBND phuong Thanh Xuan moi Ong/Ba")


def test_a_flow_without_texts_for_the_channel_is_refused() -> None:
    with pytest.raises(ValueError, match="has no texts for zalo"):
        Conversation(load_flow(DATA / "valid-branching.yaml"), "vi", VALUES, Channel.ZALO)


def test_english_follows_the_same_branches() -> None:
    state, steps = _run(_sms("en"), "1", "2", "2", "4", "no")
    assert steps[2].messages[0].startswith("Q4/5: What were you least satisfied with? Reply: 1 Access")
    assert steps[3].messages[0].startswith("Q5/5 (optional): Anything else")
    assert steps[-1].messages[0].startswith("Thank you for answering")
    assert state.status is ConversationStatus.DONE


def test_states_stored_before_branching_still_read() -> None:
    """Surveys running when this version was deployed have no answers/path in their state."""
    old = {"status": "asking", "question": "cong_chuc", "reprompts": 0, "version": 3, "events": [7]}
    state = ConversationState.from_dict(old)
    assert state is not None
    assert (state.answers, state.path) == ({}, ())
    step = _sms().reply(state, "4")
    assert step.state.question == "ket_qua"
    assert step.messages[0].startswith("Cau 3/3:")
    assert step.state.path == ("overall", "cong_chuc", "ket_qua")
    for bad in ({**old, "answers": [1]}, {**old, "path": "overall"}, {**old, "answers": {"a": [1]}}):
        assert ConversationState.from_dict(bad) is None


def test_flows_are_not_changed_by_the_engine() -> None:
    flow = default_flow("sipas-sms")
    before = copy.deepcopy(flow.model_dump())
    _run(Conversation(flow, "vi", VALUES), "1", "1", "1", "1", "x")
    assert flow.model_dump() == before
