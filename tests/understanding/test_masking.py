"""mask_personal_data: no phone, ID card number or e-mail reaches a report in clear."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flows.understanding import mask_personal_data


@pytest.mark.parametrize(
    ("comment", "masked"),
    [
        ("Gọi tôi 0912345678 nhé", "Gọi tôi [SĐT] nhé"),
        ("sdt 0912 345 678", "sdt [SĐT]"),
        ("số 091.234.5678", "số [SĐT]"),
        ("+84 912-345-678 gọi lại", "[SĐT] gọi lại"),
        ("84912345678", "[SĐT]"),
        ("máy bàn 024 3826 1234", "máy bàn [SĐT]"),
        ("CCCD 001099012345", "CCCD [CCCD]"),
        ("cccd: 0010 9901 2345.", "cccd: [CCCD]."),
        ("CMND 123456789", "CMND [CMND]"),
        ("STK 1903 5678 9012 345", "STK [số]"),
        ("email nguyenvana@gmail.com", "email [email]"),
        ("０９１２３４５６７８", "[SĐT]"),
        ("số 0912345678, cccd 001099012345", "số [SĐT], cccd [CCCD]"),
    ],
)
def test_personal_numbers_are_masked(comment: str, masked: str) -> None:
    assert mask_personal_data(comment) == masked


@pytest.mark.parametrize(
    "comment",
    [
        "Cán bộ đòi 2.000.000 đồng",
        "đòi 1.500.000.000 đồng",
        "Nộp hồ sơ ngày 12/03/2024, hẹn 15/03",
        "hồ sơ số 12345, chờ 3 ngày",
        "5, rất hài lòng",
    ],
)
def test_what_a_report_needs_is_kept(comment: str) -> None:
    assert mask_personal_data(comment) == comment


def test_output_is_nfc() -> None:
    nfd = unicodedata.normalize("NFD", "Cán bộ tốt, sđt 0912345678")
    assert mask_personal_data(nfd) == "Cán bộ tốt, sđt [SĐT]"


@given(
    st.sampled_from(["0", "84", "+84 "]),
    st.text(alphabet="0123456789", min_size=9, max_size=9),
    st.sampled_from(["", " ", "."]),
    st.text(alphabet="abc ạ,", max_size=10),
    st.text(alphabet="abc ạ,", max_size=10),
)
def test_no_mobile_number_survives_in_any_common_form(
    prefix: str, digits: str, separator: str, before: str, after: str
) -> None:
    number = prefix + separator.join([digits[:3], digits[3:6], digits[6:]])
    masked = mask_personal_data(f"{before} {number} {after}")
    assert digits[3:] not in masked.replace(" ", "").replace(".", "")
