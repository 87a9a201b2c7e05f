"""Replies typed without a Vietnamese keyboard (Telex, VNI) or with phone slips (issue 11).

The encoder below is written from the keyboards' published rules, independently of the decoder
in flows/understanding/typing.py, so the property tests check the decoder against the rules and
not against itself: a Telex or VNI spelling of any lexicon phrase parses like its accented form.
"""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.understanding import Keyword, ParsedReply, Reason, ReplyKind, parse_reply
from flows.understanding.lexicon import KEYWORDS, NUMBER_WORDS, SCALE_LABELS, YESNO_WORDS
from flows.understanding.typing import decode_telex, decode_vni, readings

# --- the issue's examples, through the same function `sipas flows parse` uses ------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("hai lonf", 4),  # Telex "lòn"? no: a QWERTY slip of "long" (f next to g)
        ("rats hair long", 5),  # Telex: rát hải long
        ("raats hafi lofng", 5),  # Telex: rất hài lòng, tones in the middle of words
        ("RAATS HAFI LOFNG", 5),
        ("ha2i lo2ng", 4),  # VNI: hài lòng (the 2s are tones, never the number 2)
        ("ra6t1 ha2i lo2ng", 5),
        ("ratthailong", 5),  # words run together, a letter typed twice
        ("khoong hafi lofng", 2),
        ("kho6ng ha2i lo2ng", 2),
        ("binhf thuowngf", 3),
        ("bi2nh thu7o7ng2", 3),
        ("hai lomg", 4),  # T9: m and n share a key
        ("khong hai lonh", 2),  # T9: g and h share a key
        ("tamduoc", 3),
        ("toots", 4),  # Telex "tốt"
        ("tots", 4),  # Telex "tót": read like "tôt", "tot" (accents on scale words are loose)
        ("ddc", None),  # "đc" (được) alone answers nothing
        ("chuwa carm thaasy hailong", 2),  # the literal "chuwa" is no word: Telex only
        ("poor", 2),  # Telex "pổ" means nothing; "poor" as typed is an answer
    ],
)
def test_the_issues_replies(text: str, value: int | None) -> None:
    reply = parse_reply(text, ReplyKind.SCALE5)
    assert reply.value == value, reply
    assert reply.understood is (value is not None)
    assert reply.text == text  # what is stored and shown is what the citizen typed


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("hem hl", 2),  # teencode "hem" = không
        ("tot lem", 5),  # "lem" = lắm
        ("khonh hai long", 2),  # the slipped "không" is corrected, never read as "hài lòng"
        ("hai long xyz", None),  # an unknown word right next to a scale word
        ("rat hai long abc", None),
        ("rat hai long, abc", 5),  # set apart by a comma: a comment
    ],
)
def test_an_unknown_word_touching_a_scale_word_may_change_it(text: str, value: int | None) -> None:
    """From the independent corpus block (tests/data/replies.jsonl, `source`): "hem hl" and "tot
    lem" were first recorded as 4, a wrong number; now a word the lexicon does not know may not
    sit right next to a scale word."""
    assert parse_reply(text, ReplyKind.SCALE5).value == value


def test_bif_thuowng_is_honestly_not_understood() -> None:
    """ "bì thương" (Telex) is no answer: "bình thường" with letters missing, or "bị thương"
    (wounded)? Reading it as 3 would be a guess."""
    reply = parse_reply("bif thuowng", ReplyKind.SCALE5)
    assert not reply.understood
    assert reply.reason == Reason.NO_ANSWER


@pytest.mark.parametrize("text", ["ha2i", "lo2ng ha2i", "so5", "sao5", "ha2i lo2ng 2", "ba3"])
def test_a_vni_tone_digit_is_never_a_value(text: str) -> None:
    reply = parse_reply(text, ReplyKind.SCALE5)
    digits = {int(ch) for ch in text if ch.isdigit()}
    if reply.understood:
        assert not digits & set(reply.values) or text == "ha2i lo2ng 2", reply
    assert parse_reply("so5", ReplyKind.SCALE5).reason == Reason.NO_ANSWER  # "sọ": no answer


def test_a_reply_that_decodes_two_ways_is_asked_again() -> None:
    """ "ha2i lo2ng 2": hài lòng (4) and the digit 2 disagree; "baf" is "bà" (filler) not "ba"."""
    assert not parse_reply("ha2i lo2ng 2", ReplyKind.SCALE5).understood
    assert not parse_reply("hai long 2", ReplyKind.SCALE5).understood
    assert parse_reply("baf", ReplyKind.SCALE5).reason == Reason.NO_ANSWER


@pytest.mark.parametrize("text", ["diem5", "5a", "c1 5", "cau1: 4", "q1 4", "5d"])
def test_digits_glued_to_words_that_make_no_syllable_stay_numbers(text: str) -> None:
    reply = parse_reply(text, ReplyKind.SCALE5, question_number=1)
    assert reply.understood, reply
    assert reply.value in (4, 5)


@pytest.mark.parametrize(
    ("text", "keyword"),
    [
        ("tuwf choois", Keyword.OPT_OUT),
        ("tu72 cho6i1", Keyword.OPT_OUT),
        ("ddaang kys", Keyword.OPT_IN),
        ("d9a8ng ky1", Keyword.OPT_IN),
        ("huwowngs daanx", Keyword.HELP),
    ],
)
def test_keywords_typed_in_telex_or_vni(text: str, keyword: Keyword) -> None:
    for kind in ReplyKind:
        assert parse_reply(text, kind).keyword is keyword, (text, kind)


def test_a_slip_never_makes_a_keyword_or_a_number() -> None:
    """ "dunh" is one key from "dung" (stop): a slipped opt-out is no opt-out; "nan" is not "nam"."""
    assert parse_reply("dunh", ReplyKind.SCALE5).keyword is None
    assert not parse_reply("nan", ReplyKind.SCALE5).understood
    assert not parse_reply("bin", ReplyKind.SCALE5).understood


def test_free_text_keeps_the_citizens_spelling() -> None:
    reply = parse_reply("cans booj nhieejt tinhf", ReplyKind.TEXT)
    assert reply.text_value == "cans booj nhieejt tinhf"


@pytest.mark.parametrize(
    ("word", "syllable"),
    [
        ("raats", "rất"), ("hafi", "hài"), ("lofng", "lòng"), ("thuowng", "thương"),
        ("nguowif", "người"), ("ddaau", "đâu"), ("vieetj", "việt"), ("quys", "quý"),
        ("giuwax", "giữa"), ("tw", "tư"), ("khoong", "không"), ("nhes", "nhé"), ("hoaf", "hoà"),
        ("yes", None), ("thanks", None), ("pls", None), ("rat", None), ("okkk", None),
    ],
)  # fmt: skip
def test_telex_words(word: str, syllable: str | None) -> None:
    assert decode_telex(word) == syllable


@pytest.mark.parametrize(
    ("word", "syllable"),
    [
        ("ha2i", "hài"), ("lo2ng", "lòng"), ("d9u7o7ng2", "đường"), ("ra6t1", "rất"),
        ("ra1t6", "rất"), ("so5", "sọ"), ("diem5", None), ("c1", None), ("cau1", None),
        ("q2", None), ("5a", None), ("ok5", None),
    ],
)  # fmt: skip
def test_vni_words(word: str, syllable: str | None) -> None:
    assert decode_vni(word) == syllable


def test_replies_with_diacritics_are_read_as_typed() -> None:
    assert readings("hài lonf") == readings("") == readings("5")
    assert readings("hài lonf").telex is None


# --- property: Telex and VNI spellings of every lexicon phrase -------------------------------

_TONES_TELEX = {"\u0301": "s", "\u0300": "f", "\u0309": "r", "\u0303": "x", "\u0323": "j"}
_TONES_VNI = {"\u0301": "1", "\u0300": "2", "\u0309": "3", "\u0303": "4", "\u0323": "5"}
_LETTERS_TELEX = {"â": "aa", "ê": "ee", "ô": "oo", "ă": "aw", "ơ": "ow", "ư": "uw", "đ": "dd"}
_LETTERS_VNI = {"â": "a6", "ê": "e6", "ô": "o6", "ă": "a8", "ơ": "o7", "ư": "u7", "đ": "d9"}
# Lexicon spellings that are abbreviations, not syllables: no keyboard types them with marks.
NOT_SYLLABLES = frozenset({"ạh", "đg", "đc", "đk", "lg", "lòg", "khôg", "rùi"})


def encode(word: str, *, vni: bool, tone_at_end: bool) -> str:
    """How a person types `word` with the keyboard: letter marks where the letter is, the tone
    right after its vowel or at the end of the word (both are allowed by Unikey and phone IMEs)."""
    letters = _LETTERS_VNI if vni else _LETTERS_TELEX
    tones = _TONES_VNI if vni else _TONES_TELEX
    out: list[str] = []
    tone = ""
    for ch in unicodedata.normalize("NFC", word):
        base, *marks = unicodedata.normalize("NFD", ch)
        marked = unicodedata.normalize("NFC", base + "".join(m for m in marks if m not in tones))
        out.append(letters.get(marked, marked))
        for mark in marks:
            if mark in tones:
                tone = tones[mark]
                if not tone_at_end:
                    out.append(tone)
    if tone_at_end and tone:
        out.append(tone)
    return "".join(out)


def _phrases() -> list[str]:
    tables = [*SCALE_LABELS.values(), *NUMBER_WORDS.values(), *YESNO_WORDS.values(), *KEYWORDS.values()]
    found = sorted({spelling.lstrip("~!") for spellings in tables for spelling in spellings})
    return [
        phrase
        for phrase in found
        if not phrase.isascii() and not set(phrase.split()) & NOT_SYLLABLES and "  " not in phrase
    ]


PHRASES = _phrases()


def meaning(reply: ParsedReply) -> tuple[object, ...]:
    return (reply.understood, reply.values, reply.keyword)


def test_the_property_covers_the_lexicon() -> None:
    assert len(PHRASES) > 150


@settings(max_examples=600)
@given(
    st.sampled_from(PHRASES),
    st.booleans(),
    st.booleans(),
    st.sampled_from([ReplyKind.SCALE5, ReplyKind.YESNO, ReplyKind.CHOICE5]),
)
def test_telex_and_vni_spellings_parse_like_the_accented_phrase(
    phrase: str, vni: bool, tone_at_end: bool, kind: ReplyKind
) -> None:
    typed = " ".join(encode(word, vni=vni, tone_at_end=tone_at_end) for word in phrase.split())
    assert meaning(parse_reply(typed, kind)) == meaning(parse_reply(phrase, kind)), typed


@given(st.sampled_from(PHRASES), st.booleans(), st.sampled_from(["", "dạ ", "em chọn "]))
def test_upper_case_and_politeness_do_not_change_a_telex_reading(phrase: str, vni: bool, prefix: str) -> None:
    typed = " ".join(encode(word, vni=vni, tone_at_end=True) for word in (prefix + phrase).split())
    accented = prefix + phrase
    for kind in (ReplyKind.SCALE5, ReplyKind.YESNO):
        assert meaning(parse_reply(typed.upper(), kind)) == meaning(parse_reply(accented, kind)), typed
