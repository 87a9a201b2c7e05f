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

_ALLOWED = re.compile(r"^[\d\s().+\-]+$", re.ASCII)
_MOBILE_TYPES = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}


class _Ranges:
    """libphonenumber's Vietnamese number ranges, compiled once.

    `phonenumbers.parse` + `is_valid_number` + `number_type` cost about half the CPU of intake
    (they recompile their patterns on every call); for a 10-digit national number this applies
    the same metadata in the same order (general range, then the non-mobile types
    `_number_type_helper` tries before mobile, then mobile), so the answer is the library's own:
    tests/intake/test_phones.py compares the two over every prefix."""

    def __init__(self) -> None:
        metadata = phonenumbers.PhoneMetadata.metadata_for_region("VN")
        assert metadata is not None
        self.general = self._desc(metadata.general_desc)
        self.others = [
            (kind, self._desc(desc))
            for kind, desc in (
                (PhoneNumberType.PREMIUM_RATE, metadata.premium_rate),
                (PhoneNumberType.TOLL_FREE, metadata.toll_free),
                (PhoneNumberType.SHARED_COST, metadata.shared_cost),
                (PhoneNumberType.VOIP, metadata.voip),
                (PhoneNumberType.PERSONAL_NUMBER, metadata.personal_number),
                (PhoneNumberType.PAGER, metadata.pager),
                (PhoneNumberType.UAN, metadata.uan),
                (PhoneNumberType.VOICEMAIL, metadata.voicemail),
            )
        ]
        self.fixed = self._desc(metadata.fixed_line)
        self.mobile = self._desc(metadata.mobile)
        self.fixed_is_mobile = bool(metadata.same_mobile_and_fixed_line_pattern)

    @staticmethod
    def _desc(desc: phonenumbers.PhoneNumberDesc | None) -> tuple[re.Pattern[str], frozenset[int]] | None:
        if desc is None or desc.national_number_pattern is None:
            return None
        return re.compile(desc.national_number_pattern), frozenset(desc.possible_length or ())

    @staticmethod
    def _matches(nsn: str, desc: tuple[re.Pattern[str], frozenset[int]] | None) -> bool:
        if desc is None:
            return False
        pattern, lengths = desc
        return (not lengths or len(nsn) in lengths) and pattern.fullmatch(nsn) is not None

    def kind(self, nsn: str) -> int:
        """number_type() of +84 `nsn` (a national significant number without leading zero)."""
        if not self._matches(nsn, self.general):
            return PhoneNumberType.UNKNOWN
        for kind, desc in self.others:
            if self._matches(nsn, desc):
                return kind
        if self._matches(nsn, self.fixed):
            if self.fixed_is_mobile or self._matches(nsn, self.mobile):
                return PhoneNumberType.FIXED_LINE_OR_MOBILE
            return PhoneNumberType.FIXED_LINE
        return PhoneNumberType.MOBILE if self._matches(nsn, self.mobile) else PhoneNumberType.UNKNOWN


_RANGES = _Ranges()


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


def _checked(national: str) -> str:
    """E.164 of a 10-digit national number, by libphonenumber's rules (see _Ranges)."""
    if national[1] != "0":
        kind = _RANGES.kind(national[1:])
        if kind is PhoneNumberType.UNKNOWN:
            raise InvalidPhoneError("not an assigned Vietnamese number range")
        if kind not in _MOBILE_TYPES:
            raise InvalidPhoneError("not a mobile number (SMS cannot reach it)")
        return "+84" + national[1:]
    return _checked_by_library(national)


def _checked_by_library(national: str) -> str:
    """The same check through phonenumbers itself (kept for numbers the fast path does not
    cover: a second leading zero, where the library's own prefix handling decides)."""
    try:
        number = phonenumbers.parse(national, "VN")
    except NumberParseException as exc:
        raise InvalidPhoneError(f"not a phone number: {exc}") from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhoneError("not an assigned Vietnamese number range")
    if phonenumbers.number_type(number) not in _MOBILE_TYPES:
        raise InvalidPhoneError("not a mobile number (SMS cannot reach it)")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


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
    return _checked(national)


def to_msisdn(e164: str) -> str:
    """The digits-only international form SMS gateways expect (`84912345678`)."""
    return e164.lstrip("+")
