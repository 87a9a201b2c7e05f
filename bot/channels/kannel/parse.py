"""Kannel's callbacks read into the neutral types: an MO into InboundSms, a DLR into DeliveryReport.

Parsing never touches the database: the webhook stores the raw parameters first, and the worker
runs `parse_stored` again on the stored copy. Kannel's DLR codes (`%d`) are mapped here, and only
here, onto the neutral `Delivery` the outbox keeps:

| Kannel %d | name           | Delivery  |
|-----------|----------------|-----------|
| 1         | delivered      | DELIVERED |
| 2         | failed         | FAILED    |
| 16        | smsc_rejected  | FAILED    |
| 4         | buffered       | ACCEPTED  |
| 8         | smsc_accepted  | ACCEPTED  |
| other     | unknown        | ACCEPTED (a report at all means Kannel took the message) |
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime

from bot.channels.sms import DeliveryReport, InboundRequestError, InboundSms
from flows.phones import InvalidPhoneError, normalize_phone
from storage.outbox import Delivery

__all__ = [
    "DLR_STATUS",
    "PLAIN",
    "parse_delivery_report",
    "parse_inbound",
    "parse_stored",
]

# Kannel %d -> (its name, the neutral status).
DLR_STATUS: dict[int, tuple[str, Delivery]] = {
    1: ("delivered", Delivery.DELIVERED),
    2: ("failed", Delivery.FAILED),
    4: ("buffered", Delivery.ACCEPTED),
    8: ("smsc_accepted", Delivery.ACCEPTED),
    16: ("smsc_rejected", Delivery.FAILED),
}
# What may travel inside the dlr-url unescaped (RFC 3986 unreserved characters).
PLAIN = re.compile(r"^[A-Za-z0-9._~-]{1,64}$")
_KANNEL_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")
_PROVIDER_ID_MAX = 128  # InboundEvent.provider_id


def parse_inbound(params: Mapping[str, str]) -> InboundSms:
    """An MO from the sms-service get-url `from=%p&to=%P&text=%b&id=%I&ts=%t`."""
    provider_id = params.get("id", "").strip()
    raw_sender = params.get("from", "").strip()
    if not provider_id:
        raise InboundRequestError("missing_field", "id (Kannel %I) is required")
    if len(provider_id) > _PROVIDER_ID_MAX:
        raise InboundRequestError("invalid_field", f"id is longer than {_PROVIDER_ID_MAX} characters")
    if not raw_sender:
        raise InboundRequestError("missing_field", "from (Kannel %p) is required")
    if "text" not in params:
        raise InboundRequestError("missing_field", "text (Kannel %b) is required, even when empty")
    try:
        sender = normalize_phone(raw_sender)
    except InvalidPhoneError:
        sender = raw_sender  # a short code, an alphanumeric sender, a foreign number: kept as given
    # NUL cannot be stored in PostgreSQL text columns and is never part of a real reply.
    text = unicodedata.normalize("NFC", params["text"]).replace("\x00", "")
    return InboundSms(
        provider_id=provider_id,
        sender=sender,
        receiver=params.get("to", "").strip(),
        text=text,
        sent_at=_parse_kannel_time(params.get("ts", "")),
    )


def parse_stored(payload: str) -> InboundSms:
    """An MO as the webhook stored it (its parameters as a JSON object, token left out)."""
    return parse_inbound(json.loads(payload))


def parse_delivery_report(params: Mapping[str, str]) -> DeliveryReport:
    """A DLR from our dlr-url `ref=..&msg=..&token=..&status=%d&ts=%T`."""
    ref = params.get("ref", "").strip()
    if not ref:
        raise InboundRequestError("missing_field", "ref is required")
    if not PLAIN.match(ref):
        raise InboundRequestError("invalid_field", "ref is not one of our message references")
    raw_status = params.get("status", "").strip()
    if not raw_status:
        raise InboundRequestError("missing_field", "status (Kannel %d) is required")
    if not raw_status.isdigit() or len(raw_status) > 4:
        raise InboundRequestError("invalid_field", "status must be a Kannel DLR code (1, 2, 4, 8, 16)")
    code = int(raw_status)
    name, status = DLR_STATUS.get(code, ("unknown", Delivery.ACCEPTED))
    timestamp = params.get("ts", "").strip()
    return DeliveryReport(
        ref=ref,
        status=status,
        detail=f"kannel {code} {name}",
        # Kannel sends each report of a message once per code; a retry repeats code and time.
        provider_id=f"{ref}:{code}:{timestamp}"[:_PROVIDER_ID_MAX],
        attempt_id=params.get("msg", "").strip() or None,
        reported_at=_parse_epoch(timestamp),
    )


def _parse_kannel_time(value: str) -> datetime | None:
    """Kannel's %t: `YYYY-MM-DD HH:MM:SS` in UTC (its `+` arrives decoded as a space). That form
    is read with `fromisoformat` (strptime cost the web about 3 % of its time per MO); anything
    else goes through strptime as before, so the same inputs are accepted."""
    text = value.strip().replace("+", " ")
    try:
        if _KANNEL_TIME.fullmatch(text):
            return datetime.fromisoformat(text).replace(tzinfo=UTC)
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None


def _parse_epoch(value: str) -> datetime | None:
    """Kannel's %T: unix seconds."""
    value = value.strip()
    if not value.isdigit() or len(value) > 12:
        return None
    try:
        return datetime.fromtimestamp(int(value), tz=UTC)
    except (ValueError, OverflowError):  # past the year 9999: not a time Kannel sends
        return None
