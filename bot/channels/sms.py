"""The SMS side of the neutral types, independent of the gateway that carries the messages.

A provider is one package under bot/channels/ (kannel/: HTTP to us, SMPP to the operators;
brandname/: a JSON brandname-SMS API of the kind Vietnamese aggregators offer). Its webhooks read
callbacks into the neutral `InboundSms` and `DeliveryReport` and store them through
bot.channels.intake; its `PROVIDER` (bot.channels.provider) reads a stored MO again
(`parse_stored`) and builds its sender (bot.channels.outgoing: the send types every channel
shares). Parsing never touches the database. bot.channels.registry lists the providers.

Segment counting lives here because it is a property of SMS itself, not of a gateway: a text
that fits the GSM 03.38 alphabet travels as GSM-7 (160 characters, 153 per part when split);
any other character (every Vietnamese letter with a diacritic except é, è, à, ù, ì, ò) forces
the whole message into UCS-2 (70 characters, 67 per part).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from storage.outbox import Delivery

__all__ = [
    "GSM7_BASIC",
    "GSM7_EXTENSION",
    "Coding",
    "DeliveryReport",
    "InboundRequestError",
    "InboundSms",
    "count_segments",
    "is_gsm7",
    "sms_coding",
]

Coding = Literal["gsm7", "ucs2"]

# GSM 03.38 default alphabet (without the escape character itself, which is not text).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Extension table: each of these is sent as ESC + character, so it costs two septets.
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")

_GSM7_SINGLE, _GSM7_MULTI = 160, 153  # septets in one SMS / in each part of a concatenated one
_UCS2_SINGLE, _UCS2_MULTI = 70, 67  # UTF-16 code units, likewise


class InboundRequestError(ValueError):
    """A provider callback lacks something we need or carries something malformed.
    `error` is the machine-readable code the webhook answers with (400)."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(message)
        self.error = error
        self.message = message


@dataclass(frozen=True)
class InboundSms:
    provider_id: str  # the gateway's id of this MO: retries of one MO carry the same id
    sender: str  # E.164 when it is a Vietnamese mobile number, else as the operator gave it
    receiver: str  # our short code or long number
    text: str  # NFC-normalised
    sent_at: datetime | None  # UTC, when the gateway tells us


@dataclass(frozen=True)
class DeliveryReport:
    ref: str  # the outbox id (Outgoing.message_id) the report is about
    status: Delivery  # the neutral meaning; the provider package maps its own codes
    detail: str  # the provider's own words, e.g. "kannel 16 smsc_rejected" (kept with a failure)
    provider_id: str  # identifies this report: a provider's retry of it is stored once
    attempt_id: str | None = None  # Sent.provider_id of the attempt this reports on
    reported_at: datetime | None = None  # UTC


def is_gsm7(text: str) -> bool:
    """True when every character is in the GSM 03.38 alphabet (basic or extension table)."""
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


def sms_coding(text: str) -> Coding:
    return "gsm7" if is_gsm7(text) else "ucs2"


def count_segments(text: str) -> int:
    """How many SMS the operator bills for `text`. An escape pair (GSM-7 extension character)
    and a surrogate pair (UCS-2 character outside the BMP, e.g. an emoji) are never split
    across two parts, so a part may hold one unit less than the nominal 153 or 67."""
    if is_gsm7(text):
        units = [2 if ch in GSM7_EXTENSION else 1 for ch in text]
        single, multi = _GSM7_SINGLE, _GSM7_MULTI
    else:
        units = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
        single, multi = _UCS2_SINGLE, _UCS2_MULTI
    if sum(units) <= single:
        return 1
    parts, used = 1, 0
    for unit in units:
        if used + unit > multi:
            parts, used = parts + 1, 0
        used += unit
    return parts
