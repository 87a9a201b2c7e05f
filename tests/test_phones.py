"""Vietnamese mobile numbers in every spelling the one-stop system sends, to one E.164 form."""

from __future__ import annotations

import pytest

from flows.phones import OLD_MOBILE_PREFIXES, InvalidPhoneError, normalize_phone, to_msisdn


@pytest.mark.parametrize(
    "raw",
    [
        "0912345678",
        "84912345678",
        "+84912345678",
        "+84 912 345 678",
        "0084912345678",
        "00 84 912 345 678",
        "091 234 5678",
        "0912.345.678",
        "0912-345-678",
        "(+84) 912 345 678",
        "(091) 234-5678",
        "912345678",
        "  0912345678  ",
        "+84 (0) 912 345 678",
    ],
)
def test_common_spellings_of_one_number(raw: str) -> None:
    assert normalize_phone(raw) == "+84912345678"


@pytest.mark.parametrize(("old", "new"), sorted(OLD_MOBILE_PREFIXES.items()))
def test_every_old_11_digit_prefix_maps_to_its_2018_prefix(old: str, new: str) -> None:
    expected = "+84" + new[1:] + "4567890"
    assert normalize_phone(old + "4567890") == expected
    # the same number written internationally
    assert normalize_phone("+84 " + old[1:] + " 456 7890") == expected


def test_the_2018_map_is_the_published_one() -> None:
    """21 prefixes of five networks (Viettel 016x, MobiFone/VinaPhone 012x, Vietnamobile, Gmobile)."""
    assert len(OLD_MOBILE_PREFIXES) == 21
    assert OLD_MOBILE_PREFIXES["0162"] == "032"
    assert OLD_MOBILE_PREFIXES["0120"] == "070"
    assert OLD_MOBILE_PREFIXES["0123"] == "083"
    assert OLD_MOBILE_PREFIXES["0186"] == "056"
    assert OLD_MOBILE_PREFIXES["0199"] == "059"


@pytest.mark.parametrize(
    "raw",
    [
        "024 3825 1234",  # Hà Nội landline
        "02438251234",
        "+84 24 3825 1234",
        "028 3829 1234",  # Hồ Chí Minh City landline
    ],
)
def test_landlines_are_rejected(raw: str) -> None:
    with pytest.raises(InvalidPhoneError):
        normalize_phone(raw)


@pytest.mark.parametrize("raw", ["+1 202 555 0100", "+44 20 7946 0958", "+855 12 345 678", "+66812345678"])
def test_foreign_numbers_are_rejected(raw: str) -> None:
    with pytest.raises(InvalidPhoneError, match="Vietnamese"):
        normalize_phone(raw)


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "abc",
        "0912abc678",
        "09123456",  # too short
        "091234567890",  # too long
        "01001234567",  # 11 digits, never a mobile prefix
        "0112345678",  # 10 digits, no such range
        "+84",
        "0912345678; DROP TABLE cases",
        "０９１２３４５６７８",  # full-width digits
    ],
)
def test_garbage_is_rejected_with_a_reason(raw: str) -> None:
    with pytest.raises(InvalidPhoneError) as caught:
        normalize_phone(raw)
    assert str(caught.value)


def test_msisdn_form_for_gateways() -> None:
    assert to_msisdn(normalize_phone("0168 555 0123")) == "84385550123"
