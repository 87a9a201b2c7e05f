"""GSM-7 or UCS-2, and how many SMS a text costs: what the operator bills and Kannel splits."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.channels.sms import GSM7_BASIC, GSM7_EXTENSION, count_segments, is_gsm7, sms_coding


@pytest.mark.parametrize(
    ("text", "gsm7"),
    [
        ("Cam on ban da danh gia. Tra loi 1-5", True),
        ("@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ!¡¿§ÄÖÑÜäöñüà", True),  # the basic table, not ASCII
        ("{[~]}|^\\€", True),  # the extension table
        ("line one\nline two", True),
        ("Cảm ơn bạn", False),
        ("Đánh giá", False),  # Đ is not in GSM-7
        ("Tốt", False),
        ("café à la", True),  # é and à are GSM-7, so not every accent forces UCS-2
        ("ç", False),  # only the capital Ç is in the table
        ("tab\there", False),
        ("emoji 🙂", False),
        ("", True),
    ],
)
def test_gsm7_alphabet(text: str, gsm7: bool) -> None:
    assert is_gsm7(text) is gsm7
    assert sms_coding(text) == ("gsm7" if gsm7 else "ucs2")


def test_decomposed_vietnamese_is_ucs2_once_composed() -> None:
    nfd = unicodedata.normalize("NFD", "Rất hài lòng")
    assert not is_gsm7(nfd)  # combining marks are not GSM-7 either
    assert sms_coding(unicodedata.normalize("NFC", nfd)) == "ucs2"


@pytest.mark.parametrize(
    ("length", "segments"),
    [(0, 1), (1, 1), (160, 1), (161, 2), (306, 2), (307, 3), (459, 3), (460, 4)],
)
def test_gsm7_segments(length: int, segments: int) -> None:
    assert count_segments("a" * length) == segments


@pytest.mark.parametrize(
    ("length", "segments"),
    [(1, 1), (70, 1), (71, 2), (134, 2), (135, 3), (201, 3), (202, 4)],
)
def test_ucs2_segments(length: int, segments: int) -> None:
    assert count_segments("ư" * length) == segments


def test_one_accented_letter_turns_160_characters_into_three_sms() -> None:
    text = "a" * 159 + "ạ"
    assert count_segments("a" * 160) == 1
    assert count_segments(text) == 3  # 160 UCS-2 units: 67 + 67 + 26


def test_extension_characters_count_twice() -> None:
    assert count_segments("€" * 80) == 1  # 160 septets
    assert count_segments("a" * 159 + "€") == 2  # 161 septets
    assert count_segments("a" * 158 + "{") == 1  # exactly 160


def test_escape_pair_is_not_split_across_parts() -> None:
    # 152 plain + one 2-septet character: it does not fit the first part's last septet.
    text = "a" * 152 + "€" + "b" * 10
    assert sum(2 if ch in GSM7_EXTENSION else 1 for ch in text) == 164
    assert count_segments(text) == 2  # 152 | € + 10
    text = "a" * 152 + "€" + "b" * 152
    assert count_segments(text) == 3  # 152 | € + 151 | 1: the pair pushed one septet over


def test_surrogate_pair_is_not_split_across_parts() -> None:
    assert count_segments("🙂" * 35) == 1  # 70 UTF-16 units
    assert count_segments("ư" * 66 + "🙂" + "ư" * 10) == 2  # 66 | 🙂 + 10
    assert count_segments("ư" * 66 + "🙂" + "ư" * 66) == 3  # the emoji does not fit unit 67


@given(st.text(alphabet=sorted(GSM7_BASIC), max_size=800))
def test_gsm7_basic_text_segments_match_the_formula(text: str) -> None:
    n = len(text)
    expected = 1 if n <= 160 else -(-n // 153)
    assert count_segments(text) == expected
