"""parse_reply's contract with the conversation engine: fields, reasons, and the options that
tune a question (several answers, question numbers, yes digit, tone of yes, choice labels)."""

from __future__ import annotations

import unicodedata

import pytest

from flows.understanding import Keyword, ParsedReply, Reason, ReplyKind, parse_reply
from flows.understanding.normalize import TokenType, tokenize
from flows.understanding.parser import MAX_ANSWER_CHARS

ELEMENTS = [
    "Tiếp cận dịch vụ",
    "Thủ tục hành chính",
    "Công chức giải quyết công việc",
    "Kết quả",
    "Tiếp nhận, xử lý góp ý, phản ánh, kiến nghị",
]


def test_a_plain_answer() -> None:
    nfd = unicodedata.normalize("NFD", "  5 ạ ")
    assert parse_reply(nfd, ReplyKind.SCALE5) == ParsedReply(
        text="5 ạ", understood=True, value=5, values=(5,), keyword=None, reason=None, text_value=None
    )


def test_an_answer_with_a_comment_keeps_the_whole_reply_as_comment() -> None:
    reply = parse_reply("5, cán bộ nhiệt tình", ReplyKind.SCALE5)
    assert (reply.value, reply.comment) == (5, "5, cán bộ nhiệt tình")
    assert parse_reply("5 ạ em cảm ơn", ReplyKind.SCALE5).comment is None


def test_a_keyword_is_understood_without_a_value() -> None:
    reply = parse_reply("Từ chối", ReplyKind.YESNO)
    assert (reply.understood, reply.keyword, reply.value, reply.values) == (True, Keyword.OPT_OUT, None, ())


@pytest.mark.parametrize(
    ("text", "keyword"),
    [
        ("HD", Keyword.HELP),
        ("?", Keyword.HELP),
        ("LAI", Keyword.RESTART),
        ("bắt đầu lại", Keyword.RESTART),
        ("HD TC", Keyword.OPT_OUT),  # a refusal outranks everything else in the same reply
        ("TC, đừng nhắn nữa", Keyword.OPT_OUT),
    ],
)
def test_keywords(text: str, keyword: Keyword) -> None:
    assert parse_reply(text, ReplyKind.SCALE5).keyword is keyword


def test_dung_is_stop_but_dung_with_its_accent_is_right() -> None:
    assert parse_reply("DUNG", ReplyKind.YESNO).keyword is Keyword.OPT_OUT
    assert parse_reply("dừng", ReplyKind.YESNO).keyword is Keyword.OPT_OUT
    assert parse_reply("đúng", ReplyKind.YESNO).value == 1


def test_free_text_is_kept_cleaned_and_keywords_still_win() -> None:
    reply = parse_reply(unicodedata.normalize("NFD", "  Cần   rút ngắn\nthời gian "), ReplyKind.TEXT)
    assert reply.understood
    assert reply.text_value == "Cần rút ngắn thời gian"
    assert reply.value is None
    assert parse_reply("Không", ReplyKind.TEXT).text_value == "Không"
    assert parse_reply("TC", ReplyKind.TEXT).keyword is Keyword.OPT_OUT


@pytest.mark.parametrize(
    ("text", "kind", "reason"),
    [
        ("", ReplyKind.SCALE5, Reason.EMPTY),
        (" \n\u200b", ReplyKind.TEXT, Reason.EMPTY),
        ("không", ReplyKind.SCALE5, Reason.AMBIGUOUS),
        ("3 hoặc 4", ReplyKind.SCALE5, Reason.AMBIGUOUS),
        ("không biết", ReplyKind.YESNO, Reason.AMBIGUOUS),
        ("6", ReplyKind.SCALE5, Reason.OUT_OF_RANGE),
        ("45", ReplyKind.CHOICE5, Reason.OUT_OF_RANGE),
        ("3", ReplyKind.YESNO, Reason.OUT_OF_RANGE),
        ("5 4", ReplyKind.SCALE5, Reason.TOO_MANY),
        ("cán bộ nhiệt tình", ReplyKind.SCALE5, Reason.NO_ANSWER),
        ("5" + " ạ" * MAX_ANSWER_CHARS, ReplyKind.SCALE5, Reason.TOO_LONG),
    ],
)
def test_reasons(text: str, kind: ReplyKind, reason: Reason) -> None:
    reply = parse_reply(text, kind)
    assert not reply.understood
    assert reply.reason == reason
    assert reply.reason == reason.value  # a plain string for the engine and JSON


def test_no_alone_is_an_answer_to_yes_no_but_not_to_a_scale() -> None:
    assert parse_reply("không", ReplyKind.YESNO).value == 2
    assert not parse_reply("không", ReplyKind.SCALE5).understood
    assert not parse_reply("không", ReplyKind.CHOICE5).understood


def test_question_numbers_must_be_the_question_asked() -> None:
    assert parse_reply("câu 1: 4", ReplyKind.SCALE5, question_number=1).value == 4
    assert parse_reply("câu 2: 4", ReplyKind.SCALE5, question_number=1).reason == Reason.OTHER_QUESTION
    assert parse_reply("câu 1: 4", ReplyKind.SCALE5).reason == Reason.QUESTION_UNKNOWN


def test_several_answers_are_taken_in_order_only_when_allowed() -> None:
    assert parse_reply("5 4 5", ReplyKind.SCALE5, max_answers=3).values == (5, 4, 5)
    assert parse_reply("5, 4", ReplyKind.SCALE5, max_answers=3).values == (5, 4)
    assert parse_reply("5,4,5", ReplyKind.SCALE5, max_answers=3).values == (5, 4, 5)
    assert not parse_reply("4,5", ReplyKind.SCALE5, max_answers=3).understood  # 4.5 in Vietnamese
    assert parse_reply("c1 5 c2 4", ReplyKind.SCALE5, max_answers=2, question_number=1).values == (5, 4)
    assert parse_reply("5 4 5", ReplyKind.SCALE5, max_answers=2).reason == Reason.TOO_MANY
    assert parse_reply("5 4 5", ReplyKind.SCALE5).reason == Reason.TOO_MANY


def test_yes_digit_follows_the_prompt_but_yes_is_always_recorded_as_1() -> None:
    assert parse_reply("1", ReplyKind.YESNO).value == 1
    assert parse_reply("2", ReplyKind.YESNO, yes_digit=2).value == 1
    assert parse_reply("1", ReplyKind.YESNO, yes_digit=2).value == 2
    assert parse_reply("có", ReplyKind.YESNO, yes_digit=2).value == 1


def test_a_yes_no_comment_must_agree_with_the_answer() -> None:
    """Were you asked for money? "yes" is the bad answer; a praising comment contradicts it."""
    assert parse_reply("Có, họ đòi thêm tiền", ReplyKind.YESNO, yes_is_good=False).value == 1
    assert parse_reply("không ai đòi", ReplyKind.YESNO, yes_is_good=False).value == 2
    assert not parse_reply("có nộp phí đúng quy định", ReplyKind.YESNO, yes_is_good=False).understood
    assert not parse_reply("Có, họ đòi thêm tiền", ReplyKind.YESNO).understood  # tone of yes unknown
    assert parse_reply("có, trả đúng hẹn", ReplyKind.YESNO, yes_is_good=True).value == 1


def test_choice_labels_pick_the_one_option_that_contains_them() -> None:
    assert parse_reply("thủ tục", ReplyKind.CHOICE5, options=ELEMENTS).value == 2
    assert parse_reply("Cong chuc", ReplyKind.CHOICE5, options=ELEMENTS).value == 3
    assert parse_reply("2 thủ tục", ReplyKind.CHOICE5, options=ELEMENTS).value == 2
    assert not parse_reply("tiếp", ReplyKind.CHOICE5, options=ELEMENTS).understood  # options 1 and 5
    assert not parse_reply("1 thủ tục", ReplyKind.CHOICE5, options=ELEMENTS).understood
    assert not parse_reply("thủ tục", ReplyKind.CHOICE5).understood


def test_emoji_say_the_side_of_the_scale_only() -> None:
    assert parse_reply("👍", ReplyKind.SCALE5).value == 4
    assert parse_reply("5 👍", ReplyKind.SCALE5).value == 5
    assert parse_reply("1 😡", ReplyKind.SCALE5).value == 1
    assert not parse_reply("5 😡", ReplyKind.SCALE5).understood
    assert not parse_reply("👍", ReplyKind.YESNO).understood


def test_tokens_fold_width_case_and_emphasis() -> None:
    tokens = tokenize("５ OKKK kk ⭐️ :)")
    assert [(t.type, t.plain) for t in tokens] == [
        (TokenType.NUMBER, "5"),
        (TokenType.WORD, "ok"),
        (TokenType.WORD, "kk"),
        (TokenType.STAR, "⭐"),
        (TokenType.EMOJI, "🙂"),
    ]
    assert [t.plain for t in tokenize("Rất HÀI lòng đi")] == ["rat", "hai", "long", "di"]
