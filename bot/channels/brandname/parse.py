"""The brandname API's callbacks read into the neutral types, and the signature they carry.

Both callbacks are JSON objects (the contract: bot/channels/brandname/__init__.py):

- MO: `{"id", "from", "to", "text", "received_at"}` -> InboundSms;
- delivery status: `{"message_id", "ref", "status", "error_code", "reported_at"}` -> DeliveryReport,
  with the provider's status words mapped here, and only here, onto storage.outbox.Delivery:

| status                                | Delivery  |
|---------------------------------------|-----------|
| delivered                             | DELIVERED |
| failed, rejected, expired, undeliverable | FAILED |
| accepted, sent, pending, enroute      | ACCEPTED  |
| anything else                         | refused (400 unknown_status): a typo must not settle a row |

Parsing never touches the database: the webhook stores the raw body first, and the worker runs
`parse_stored` again on the stored copy of an MO.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bot.channels.sms import DeliveryReport, InboundRequestError, InboundSms
from flows.phones import InvalidPhoneError, normalize_phone
from storage.outbox import Delivery

__all__ = [
    "SIGNATURE_HEADER",
    "STATUS",
    "TIMESTAMP_HEADER",
    "parse_inbound",
    "parse_status",
    "parse_stored",
    "sign",
    "verify",
]

TIMESTAMP_HEADER = "X-Brandname-Timestamp"
SIGNATURE_HEADER = "X-Brandname-Signature"
# A signed callback older or newer than this is refused (a replay within it is a duplicate id).
MAX_SKEW_SECONDS = 300
STATUS: dict[str, Delivery] = {
    "delivered": Delivery.DELIVERED,
    "failed": Delivery.FAILED,
    "rejected": Delivery.FAILED,
    "expired": Delivery.FAILED,
    "undeliverable": Delivery.FAILED,
    "accepted": Delivery.ACCEPTED,
    "sent": Delivery.ACCEPTED,
    "pending": Delivery.ACCEPTED,
    "enroute": Delivery.ACCEPTED,
}
_ID = re.compile(r"^[A-Za-z0-9._:~-]{1,100}$")
_REF = re.compile(r"^\d{1,10}$")  # our outbox id, as we sent it


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value: `v1=` + hex HMAC-SHA256(secret, "<timestamp>." + body)."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify(secret: str, timestamp: str | None, signature: str | None, body: bytes, now: float) -> None:
    """Refuse (InboundRequestError, answered 401) a callback not signed with `secret` just now."""
    if not timestamp or not signature:
        raise InboundRequestError(
            "missing_signature", f"{TIMESTAMP_HEADER} and {SIGNATURE_HEADER} are required"
        )
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        raise InboundRequestError("bad_signature", f"{TIMESTAMP_HEADER} is not a Unix time in seconds")
    if abs(now - int(timestamp)) > MAX_SKEW_SECONDS:
        raise InboundRequestError("stale_signature", f"{TIMESTAMP_HEADER} is more than 5 minutes off")
    expected = sign(secret, timestamp, body)
    if not hmac.compare_digest(
        signature.strip().encode("utf-8", "surrogateescape"), expected.encode("ascii")
    ):
        raise InboundRequestError("bad_signature", f"{SIGNATURE_HEADER} does not match the body")


def _object(payload: Any) -> Mapping[str, Any]:
    if not isinstance(payload, Mapping):
        raise InboundRequestError("invalid_field", "the body must be a JSON object")
    return payload


def _string(payload: Mapping[str, Any], name: str, *, required: bool = True) -> str:
    value = payload.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise InboundRequestError(
            "missing_field" if value is None else "invalid_field", f"{name} must be a string"
        )
    return value


def _time(value: Any) -> datetime | None:
    """An ISO 8601 time with an offset, in UTC; anything else is left out (it is informative)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
        return parsed.astimezone(UTC) if parsed.tzinfo else None
    except (ValueError, OverflowError):  # not ISO 8601, or beyond the calendar once in UTC
        return None


def parse_inbound(payload: Any) -> InboundSms:
    """A citizen's SMS from the MO callback body."""
    body = _object(payload)
    provider_id = _string(body, "id").strip()
    raw_sender = _string(body, "from").strip()
    text = _string(body, "text")
    if not _ID.match(provider_id):
        raise InboundRequestError("invalid_field", "id must be 1-100 letters, digits or ._:~-")
    if not raw_sender:
        raise InboundRequestError("missing_field", "from is required")
    try:
        sender = normalize_phone(raw_sender)
    except InvalidPhoneError:
        sender = raw_sender  # a short code or a foreign number: kept as given
    return InboundSms(
        provider_id=provider_id,
        sender=sender,
        receiver=_string(body, "to", required=False).strip(),
        text=unicodedata.normalize("NFC", text).replace("\x00", ""),
        sent_at=_time(body.get("received_at")),
    )


def parse_stored(payload: str) -> InboundSms:
    """An MO as the webhook stored it (the raw JSON body)."""
    return parse_inbound(json.loads(payload))


def parse_status(payload: Any) -> DeliveryReport:
    """A delivery status from the status callback body."""
    body = _object(payload)
    message_id = _string(body, "message_id").strip()
    ref = _string(body, "ref").strip()
    word = _string(body, "status").strip().lower()
    if not _ID.match(message_id):
        raise InboundRequestError("invalid_field", "message_id must be 1-100 letters, digits or ._:~-")
    if not _REF.match(ref):
        raise InboundRequestError("invalid_field", "ref is not one of our message references")
    status = STATUS.get(word)
    if status is None:
        raise InboundRequestError("unknown_status", f"status must be one of {', '.join(STATUS)}")
    error_code = body.get("error_code")
    detail = f"brandname {word}" + (
        f" {error_code}" if isinstance(error_code, str | int) and error_code else ""
    )
    return DeliveryReport(
        ref=ref,
        status=status,
        detail=detail[:200],
        provider_id=f"{message_id}:{word}",
        attempt_id=message_id,
        reported_at=_time(body.get("reported_at")),
    )
