"""The SMS adapter interface, independent of the gateway that carries the messages.

Kannel (HTTP to us, SMPP to the operators) is the first implementation; Vietnamese HTTP
aggregators (eSMS.vn, SpeedSMS, Stringee) fit the same shape: a synchronous `send` called from a
worker job, and two parsers for what the provider calls back with (a citizen's reply, a
delivery report). Parsing never touches the database: the webhook stores the raw request first
and the parsers are re-run by the worker on the stored copy.

Segment counting lives here because it is a property of SMS itself, not of a gateway: a text
that fits the GSM 03.38 alphabet travels as GSM-7 (160 characters, 153 per part when split);
any other character (every Vietnamese letter with a diacritic except é, è, à, ù, ì, ò) forces
the whole message into UCS-2 (70 characters, 67 per part).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

__all__ = [
    "GSM7_BASIC",
    "GSM7_EXTENSION",
    "Coding",
    "DeliveryReport",
    "InboundRequestError",
    "InboundSms",
    "OutgoingSms",
    "SendResult",
    "SmsGateway",
    "SmsSendError",
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


@dataclass(frozen=True)
class OutgoingSms:
    to: str  # E.164, e.g. +84912345678
    text: str
    ref: str  # our outbox id, plain ASCII: it travels inside the gateway's callback URL


@dataclass(frozen=True)
class SendResult:
    provider_id: str | None  # the gateway's (or our per-attempt) message id, for correlation
    segments: int
    coding: Coding


class SmsSendError(Exception):
    """The gateway did not take the message. `retryable` says whether trying again later can
    help (timeouts, 5xx, connection refused) or not (bad credentials, a request it refuses).
    `ambiguous`: the request went out but its answer was lost (read timeout, dropped
    connection), so the gateway may have taken it: sending again could send it twice."""

    def __init__(self, message: str, retryable: bool, *, ambiguous: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.ambiguous = ambiguous


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
    ref: str  # the OutgoingSms.ref the report is about
    code: int  # Kannel's DLR type: 1 delivered, 2 failed, 4 buffered, 8 SMSC accepted, 16 rejected
    status: str  # the code's name: delivered, failed, buffered, smsc_accepted, smsc_rejected, unknown
    attempt_id: str | None = None  # SendResult.provider_id of the attempt this reports on
    reported_at: datetime | None = None  # UTC


class SmsGateway(Protocol):
    """What the workers need from an SMS gateway. `send` is synchronous: it runs inside an RQ job."""

    def send(self, sms: OutgoingSms) -> SendResult:
        """Hand one message to the gateway; raises SmsSendError when it is not accepted."""

    def parse_inbound(self, params: Mapping[str, str]) -> InboundSms:
        """A citizen's SMS from the gateway's callback parameters; raises InboundRequestError."""

    def parse_delivery_report(self, params: Mapping[str, str]) -> DeliveryReport:
        """A delivery report from the gateway's callback parameters; raises InboundRequestError."""


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
