"""Property-based tests (hypothesis) of parse_reply: it never raises, and normalisation never
changes what a reply means (NFC/NFD, case, diacritics on the listed words, full-width digits)."""

from __future__ import annotations

import unicodedata

from hypothesis import example, given, settings
from hypothesis import strategies as st

from flows.understanding import Keyword, ParsedReply, Reason, ReplyKind, parse_reply
from flows.understanding.normalize import strip_diacritics

KINDS = st.sampled_from(list(ReplyKind))
ANSWER_KINDS = st.sampled_from([ReplyKind.SCALE5, ReplyKind.YESNO, ReplyKind.CHOICE5])

# Vietnamese letters in every tone, so generated text exercises composed and decomposed forms.
_VOWELS = "aăâeêioôơuưy"
_TONES = ["", "\u0300", "\u0301", "\u0303", "\u0309", "\u0323"]
VIETNAMESE_LETTERS = sorted(
    {unicodedata.normalize("NFC", vowel + tone) for vowel in _VOWELS for tone in _TONES}
    | set("bcdđghklmnpqrstvx")
)
_ALPHABET = [*VIETNAMESE_LETTERS, *(letter.upper() for letter in VIETNAMESE_LETTERS), *"0123456789 .,!?:-*/"]
vietnamese_text = st.lists(st.sampled_from(_ALPHABET), max_size=30).map("".join)

# The words and phrases the issue lists, which must read the same with or without diacritics.
LISTED = [
    "năm", "nam", "bốn", "bon", "ba", "hai", "một", "mot", "rất hài lòng", "rat hai long", "rhl",
    "hài lòng", "hl", "ok", "tốt", "bình thường", "bt", "tạm được", "không hài lòng", "ko hl",
    "k hai long", "chưa hài lòng", "rất tệ", "kém", "rất không hài lòng", "có", "co", "c", "yes",
    "không", "khong", "ko", "k", "no", "TC", "TU CHOI", "từ chối", "HUY", "STOP", "DUNG", "HD",
    "LAI", "bắt đầu", "số 5", "5 ạ", "5 sao", "câu 1: 4", "không biết", "3 hoặc 4", "5 nhưng chậm",
]  # fmt: skip
PREFIXES = ["", "dạ ", "Dạ, ", "em chọn ", "  "]
SUFFIXES = ["", " ạ", " nhé", "!", ".", " cảm ơn", " ạ."]


def meaning(reply: ParsedReply) -> tuple[object, ...]:
    """What the engine acts on; `text` and `comment` keep the citizen's own spelling."""
    return (reply.understood, reply.value, reply.values, reply.keyword, reply.reason)


def parse(text: str, kind: ReplyKind) -> ParsedReply:
    return parse_reply(text, kind, max_answers=3, question_number=1)


@settings(max_examples=1500)
@given(st.text(), KINDS, st.integers(min_value=-2, max_value=8), st.none() | st.integers(-1, 12))
@example("\u0301\u0301", ReplyKind.SCALE5, 1, None)
@example("5" * 5000, ReplyKind.SCALE5, 1, None)
@example("câu", ReplyKind.SCALE5, 1, 1)
@example("c99999999999999999999 5", ReplyKind.SCALE5, 3, 1)
def test_never_raises_and_result_is_consistent(
    text: str, kind: ReplyKind, max_answers: int, question_number: int | None
) -> None:
    reply = parse_reply(text, kind, max_answers=max_answers, question_number=question_number)
    assert reply.text == unicodedata.normalize("NFC", reply.text)
    if not reply.understood:
        assert reply.reason in set(Reason)
        assert (reply.value, reply.values, reply.keyword, reply.text_value) == (None, (), None, None)
        return
    assert reply.reason is None
    if reply.keyword is not None:
        assert (reply.value, reply.values, reply.text_value) == (None, (), None)
    elif kind is ReplyKind.TEXT:
        assert reply.text_value
        assert reply.value is None
    else:
        assert reply.values
        assert reply.value == reply.values[0]
        assert len(reply.values) <= max(1, max_answers)
        allowed = {1, 2} if kind is ReplyKind.YESNO else {1, 2, 3, 4, 5}
        assert set(reply.values) <= allowed


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=80), KINDS)
def test_nfc_and_nfd_read_the_same(text: str, kind: ReplyKind) -> None:
    nfc, nfd = unicodedata.normalize("NFC", text), unicodedata.normalize("NFD", text)
    assert parse(nfd, kind) == parse(nfc, kind)


@given(vietnamese_text, KINDS)
def test_nfc_and_nfd_read_the_same_on_vietnamese(text: str, kind: ReplyKind) -> None:
    assert parse(unicodedata.normalize("NFD", text), kind) == parse(unicodedata.normalize("NFC", text), kind)


@given(vietnamese_text, KINDS)
def test_case_does_not_matter(text: str, kind: ReplyKind) -> None:
    expected = meaning(parse(text, kind))
    assert meaning(parse(text.upper(), kind)) == expected
    assert meaning(parse(text.lower(), kind)) == expected


@given(st.sampled_from(LISTED), st.sampled_from(PREFIXES), st.sampled_from(SUFFIXES), KINDS)
def test_listed_words_read_the_same_without_diacritics(
    word: str, prefix: str, suffix: str, kind: ReplyKind
) -> None:
    text = prefix + word + suffix
    for variant in (strip_diacritics(text), text.upper(), strip_diacritics(text).upper()):
        assert meaning(parse(variant, kind)) == meaning(parse(text, kind)), variant


@given(st.sampled_from(LISTED), st.sampled_from(PREFIXES), st.sampled_from(SUFFIXES), KINDS)
def test_listed_words_read_the_same_in_nfd(word: str, prefix: str, suffix: str, kind: ReplyKind) -> None:
    text = prefix + word + suffix
    assert parse(unicodedata.normalize("NFD", text), kind) == parse(text, kind)


# No ":" or "(": "5 :(" is a 5 with an unhappy face, which is rightly not taken.
NOISE = st.text(alphabet=" .,!*#[]'\"-", max_size=4)


@given(st.integers(1, 5), NOISE, NOISE, st.booleans())
def test_a_digit_with_stray_punctuation_is_that_digit(
    digit: int, before: str, after: str, wide: bool
) -> None:
    shown = chr(0xFF10 + digit) if wide else str(digit)  # "５" from some Vietnamese IMEs
    text = before + shown + after
    if "-" in before and "-" in after:
        return  # "-5-" reads like a list separator, covered by the corpus
    reply = parse_reply(text, ReplyKind.SCALE5)
    assert reply.understood, text
    assert reply.value == digit, text


@given(st.integers(6, 10_000))
def test_numbers_out_of_range_are_never_recorded(number: int) -> None:
    reply = parse_reply(str(number), ReplyKind.SCALE5)
    assert not reply.understood
    assert reply.reason in (Reason.OUT_OF_RANGE, Reason.AMBIGUOUS)


JOINERS = ["hoặc", "hoac", "hay", "or", "-", "/", "đến", "~"]


@given(st.integers(1, 5), st.integers(1, 5), st.sampled_from(JOINERS))
def test_two_alternatives_are_never_recorded(first: int, second: int, joiner: str) -> None:
    if first == second == 5 and joiner == "/":
        return  # "5/5" is full marks
    for max_answers in (1, 3):
        reply = parse_reply(f"{first} {joiner} {second}", ReplyKind.SCALE5, max_answers=max_answers)
        assert not reply.understood, (first, joiner, second)


# Fragments of real replies, without units ("3 ngày") or question numbers ("câu 2"), whose
# digits are never answers to something else.
FRAGMENTS = [
    "5", "4", "3", "2", "1", "số", "điểm", "sao", "ạ", "dạ", "em", "chọn", "nhé", "cảm ơn", "rất",
    "hài lòng", "không", "tốt", "ok", "nhưng", "chậm", "cán bộ", "nhiệt tình", "vì", "bình thường",
    "tệ", "năm", "ba", "hoặc", "👍", "😡", "⭐", ",", ".", "!", "?", "-", "thủ tục", "kém", "rhl",
]  # fmt: skip


@settings(max_examples=2000)
@given(st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=6))
def test_an_understood_reply_never_contradicts_its_own_digit(fragments: list[str]) -> None:
    text = " ".join(fragments)
    reply = parse_reply(text, ReplyKind.SCALE5)
    digits = {int(ch) for ch in text if ch.isdigit()}
    if reply.understood and reply.keyword is None and digits:
        assert digits == {reply.value}, text


OPT_OUTS = ["TC", "tc", "Từ chối", "TU CHOI", "STOP", "HUY", "DUNG"]


@given(st.sampled_from(OPT_OUTS), st.sampled_from(SUFFIXES), KINDS)
def test_opt_out_wins_on_every_question(word: str, suffix: str, kind: ReplyKind) -> None:
    assert parse(word + suffix, kind).keyword is Keyword.OPT_OUT
