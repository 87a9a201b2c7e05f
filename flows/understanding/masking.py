"""Mask personal data in citizens' free-text comments before any report shows them.

Comments are kept as written (NFC) so staff can read them, but citizens often paste their phone
number, their ID card number (CCCD, 12 digits; old CMND, 9 digits) or an e-mail address into them.
Reports must not show those (sipas-method.md, "Integrity of the data"; Luật 91/2025/QH15), so
every report passes comments through `mask_personal_data`.

Numbers are found with their usual separators ("0912 345 678", "091.234.5678", "+84 912-345-678")
and replaced by a label saying what was there, so the comment still reads naturally. Any other
run of nine or more digits (bank account, passport-like numbers) is masked too: a false positive
costs little, a leak is not acceptable. Amounts grouped by thousands ("1.500.000.000") are kept,
because "asked for 2.000.000 dong" is exactly what a report must show.
"""

from __future__ import annotations

import re
import unicodedata

PHONE = "[SĐT]"
CCCD = "[CCCD]"
CMND = "[CMND]"
NUMBER = "[số]"
EMAIL = "[email]"

# A run of digits, possibly with single spaces, dots or dashes between them, optionally "+".
_DIGIT_RUN = re.compile(r"(?<![\w+])\+?\d(?:[ .\-]?\d)+(?!\w)")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_AMOUNT = re.compile(r"[1-9]\d{0,2}(?:\.\d{3})+")
_MIN_DIGITS = 9


def _label(run: str) -> str | None:
    digits = "".join(str(unicodedata.decimal(ch)) for ch in run if ch.isdecimal())
    count = len(digits)
    if count < _MIN_DIGITS or _AMOUNT.fullmatch(run):
        return None
    if run.startswith("+") or (digits.startswith("84") and count in (11, 12)):
        return PHONE
    if digits.startswith("0") and count in (10, 11):
        return PHONE
    if count == 12:
        return CCCD
    if count == 9:
        return CMND
    return NUMBER


def mask_personal_data(text: str) -> str:
    """The comment in NFC with phone, CCCD/CMND and other long numbers and e-mails replaced by labels."""
    text = _EMAIL.sub(EMAIL, unicodedata.normalize("NFC", text))

    def replace(match: re.Match[str]) -> str:
        return _label(match.group(0)) or match.group(0)

    return _DIGIT_RUN.sub(replace, text)
