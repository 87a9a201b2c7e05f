"""flows.phones decides what libphonenumber decides: its fast path (the Vietnamese ranges compiled
once) is compared with phonenumbers' own parse / is_valid_number / number_type, the oracle."""

from __future__ import annotations

import random

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st
from phonenumbers import PhoneNumberType

from flows.phones import InvalidPhoneError, normalize_phone

_MOBILE = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}


def oracle(national: str) -> str | None:
    """E.164 when phonenumbers calls the 10-digit national number a valid mobile, else None."""
    try:
        number = phonenumbers.parse(national, "VN")
    except phonenumbers.NumberParseException:
        return None
    if phonenumbers.is_valid_number(number) and phonenumbers.number_type(number) in _MOBILE:
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return None


def ours(national: str) -> str | None:
    try:
        return normalize_phone(national)
    except InvalidPhoneError:
        return None


def test_every_four_digit_prefix_agrees_with_libphonenumber() -> None:
    """All 1,000 prefixes 0000-0999 (old 11-digit prefixes aside, which map first), each with
    suffixes at both ends of the range and random ones in between."""
    rng = random.Random(20261130)
    checked = mobiles = 0
    for prefix in range(1000):
        head = f"0{prefix:03d}"
        for suffix in ("000000", "999999", *(f"{rng.randrange(10**6):06d}" for _ in range(6))):
            national = head + suffix
            assert ours(national) == oracle(national), national
            checked += 1
            mobiles += oracle(national) is not None
    assert checked == 8000
    assert 500 < mobiles < 7000  # the comparison saw both answers many times


@given(st.text(alphabet="0123456789", min_size=10, max_size=10).map(lambda d: "0" + d[1:]))
def test_any_ten_digit_national_number_agrees(national: str) -> None:
    assert ours(national) == oracle(national)


@pytest.mark.parametrize(
    ("national", "message"),
    [
        ("0243825123", "not an assigned"),  # a landline prefix, one digit short
        ("02438251234", "prefix that was not a mobile prefix"),  # a landline: 11 digits
        ("0190012345", "not a mobile number"),  # premium rate 1900
        ("0672123456", "not a mobile number"),  # VoIP
    ],
)
def test_the_messages_say_why(national: str, message: str) -> None:
    with pytest.raises(InvalidPhoneError, match=message):
        normalize_phone(national)
