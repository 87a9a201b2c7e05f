"""Vietnamese mobile numbers in whatever form the one-stop system or the operator sends them.

Canonical form is E.164 (`+84912345678`): one spelling per subscriber, so the keyed hash of a
case's phone equals the keyed hash of the sender of that subscriber's SMS replies.
"""

from __future__ import annotations

import re

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType

__all__ = ["OLD_MOBILE_PREFIXES", "InvalidPhoneError", "normalize_phone", "to_msisdn"]

# September 2018 renumbering: 11-digit mobile prefixes (01xx) became 10-digit ones (0xx).
OLD_MOBILE_PREFIXES: dict[str, str] = {
    # Viettel
    "0162": "032", "0163": "033", "0164": "034", "0165": "035",
    "0166": "036", "0167": "037", "0168": "038", "0169": "039",
    # MobiFone
    "0120": "070", "0121": "079", "0122": "077", "0126": "076", "0128": "078",
    # VinaPhone
    "0123": "083", "0124": "084", "0125": "085", "0127": "081", "0129": "082",
    # Vietnamobile
    "0186": "056", "0188": "058",
    # Gmobile
    "0199": "059",
}  # fmt: skip

_ALLOWED = re.compile(r"^[\d\s().+\-]+$")
_MOBILE_TYPES = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}


class InvalidPhoneError(ValueError):
    """The value is not a Vietnamese mobile number; the message says why, in plain words."""


def _national(raw: str) -> str:
    """Digits of the number in national form (leading 0), from any international spelling."""
    text = raw.strip()
    if not text:
        raise InvalidPhoneError("phone is empty")
    if not _ALLOWED.match(text):
        raise InvalidPhoneError("phone may contain only digits, spaces, +, -, . and parentheses")
    digits = re.sub(r"\D", "", text)
    if digits.startswith("0084"):
        digits = digits[4:]
    elif digits.startswith("84") and len(digits) in (11, 12):
        digits = digits[2:]
    elif text.lstrip("( ").startswith("+"):
        raise InvalidPhoneError("only Vietnamese (+84) numbers can be surveyed")
    if not digits.startswith("0"):
        digits = "0" + digits
    return digits


def normalize_phone(raw: str) -> str:
    """E.164 for a Vietnamese mobile number; old 11-digit numbers are mapped to their 2018 form."""
    national = _national(raw)
    if len(national) == 11:
        new_prefix = OLD_MOBILE_PREFIXES.get(national[:4])
        if new_prefix is None:
            raise InvalidPhoneError("11-digit number with a prefix that was not a mobile prefix in 2018")
        national = new_prefix + national[4:]
    if len(national) != 10:
        raise InvalidPhoneError("a Vietnamese mobile number has 10 digits (0 and 9 more)")
    try:
        number = phonenumbers.parse(national, "VN")
    except NumberParseException as exc:
        raise InvalidPhoneError(f"not a phone number: {exc}") from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhoneError("not an assigned Vietnamese number range")
    if phonenumbers.number_type(number) not in _MOBILE_TYPES:
        raise InvalidPhoneError("not a mobile number (SMS cannot reach it)")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def to_msisdn(e164: str) -> str:
    """The digits-only international form SMS gateways expect (`84912345678`)."""
    return e164.lstrip("+")
