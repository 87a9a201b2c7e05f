"""The SMS gateway through Kannel: MT by `GET /cgi-bin/sendsms`, MO and DLR as HTTP callbacks.

Choices worth knowing (see docs/kannel.md):

- Coding: GSM-7 (`coding=0`) when the NFC text fits the GSM alphabet, else UCS-2 (`coding=2`);
  always `charset=UTF-8`, without which Kannel garbles UCS-2 text.
- Kannel's sendsms reply carries no message id, so each attempt gets a fresh id of ours
  (uuid4 hex) that is both the SendResult.provider_id and a parameter of the dlr-url: a delivery
  report names the outbox row (`ref`) and the attempt (`msg`) it is about.
- The dlr-url is expanded by Kannel, where `%A`..`%F` (and most letters) after a `%` are escape
  codes, so it holds only plain ASCII of ours: the outbox id, the attempt id and a per-message
  token, HMAC(KANNEL_MO_TOKEN, ref), so that a leaked callback URL can touch one message only.
- Response mapping: 2xx accepted ("0: Accepted for delivery", "3: Queued for later delivery");
  403 (bad credentials) and other 4xx are permanent; 5xx, 408, 429, timeouts and connection
  errors are retryable. A read timeout or a dropped connection after the request went out is
  `ambiguous` (Kannel may have taken it; SMS gateways offer no idempotency key): the outbox
  keeps such a message as `unknown` until its delivery report or an operator settles it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import urlencode

import httpx

from bot.channels.closing import Closing
from bot.channels.sms import (
    DeliveryReport,
    InboundRequestError,
    InboundSms,
    OutgoingSms,
    SendResult,
    SmsSendError,
    count_segments,
    sms_coding,
)
from config.settings import Settings
from flows.phones import InvalidPhoneError, normalize_phone, to_msisdn

__all__ = ["DLR_MASK_ALL", "DLR_STATUS_NAMES", "KannelGateway", "dlr_token"]

DLR_PATH = "/webhooks/sms/kannel/dlr"
# 1 delivered + 2 failed + 4 buffered + 8 SMSC accepted + 16 SMSC rejected: every report.
DLR_MASK_ALL = 31
DLR_STATUS_NAMES: dict[int, str] = {
    1: "delivered",
    2: "failed",
    4: "buffered",
    8: "smsc_accepted",
    16: "smsc_rejected",
}
_CODING_PARAM = {"gsm7": "0", "ucs2": "2"}
_RETRYABLE_4XX = {408, 429}
# What may travel inside the dlr-url unescaped (RFC 3986 unreserved characters).
_PLAIN = re.compile(r"^[A-Za-z0-9._~-]{1,64}$")
_MSISDN = re.compile(r"^\+?\d{6,15}$")
_PROVIDER_ID_MAX = 128  # InboundEvent.provider_id


def dlr_token(secret: str, ref: str) -> str:
    """The token Kannel's dlr-url carries for outbox row `ref` (lowercase hex: no `%` escapes)."""
    return hmac.new(secret.encode("utf-8"), f"kannel-dlr:{ref}".encode(), hashlib.sha256).hexdigest()[:32]


class KannelGateway(Closing):
    """One Kannel smsbox reached over HTTP. Use as a context manager (or call `close()`): it owns
    an httpx.Client whose connections must be released when the job ends."""

    def __init__(self, settings: Settings, *, timeout: float | None = None) -> None:
        settings.require("KANNEL_SENDSMS_URL", "KANNEL_USERNAME", "KANNEL_PASSWORD", "KANNEL_MO_TOKEN")
        public_url = settings.public_url
        if any(ch in public_url for ch in "%?#") or not public_url.isascii():
            raise ValueError(
                "SIPAS_PUBLIC_URL must be plain ASCII without %, ? or #: "
                "Kannel expands % escapes in the dlr-url"
            )
        self._settings = settings
        self._dlr_base = f"{public_url}{DLR_PATH}"
        # Connect quickly (a dead smsbox is a retry, not a hung worker); allow Kannel time to answer.
        # SIPAS_SEND_TIMEOUT by default: shorter than the send lease (config.settings checks).
        timeout = timeout or float(settings.SIPAS_SEND_TIMEOUT)
        self._client = httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)))

    def close(self) -> None:
        self._client.close()

    def dlr_url(self, ref: str, attempt_id: str) -> str:
        """The callback Kannel calls for every delivery report of this attempt (%d, %T: Kannel's)."""
        query = urlencode(
            {"ref": ref, "msg": attempt_id, "token": dlr_token(self._settings.KANNEL_MO_TOKEN, ref)}
        )
        return f"{self._dlr_base}?{query}&status=%d&ts=%T"

    def _request(self, sms: OutgoingSms) -> tuple[dict[str, str], SendResult]:
        """The sendsms parameters of one attempt, and what a 2xx answer to them means."""
        if not _PLAIN.match(sms.ref):
            raise SmsSendError(f"ref {sms.ref!r} is not plain ASCII (dlr-url)", retryable=False)
        if not _MSISDN.match(sms.to):
            raise SmsSendError("recipient is not an international phone number", retryable=False)
        text = unicodedata.normalize("NFC", sms.text)
        coding = sms_coding(text)
        attempt_id = uuid.uuid4().hex
        params = {
            "username": self._settings.KANNEL_USERNAME,
            "password": self._settings.KANNEL_PASSWORD,
            "from": self._settings.SMS_SENDER,
            "to": to_msisdn(sms.to),
            "text": text,
            "charset": "UTF-8",
            "coding": _CODING_PARAM[coding],
            "dlr-mask": str(DLR_MASK_ALL),
            "dlr-url": self.dlr_url(sms.ref, attempt_id),
        }
        return params, SendResult(provider_id=attempt_id, segments=count_segments(text), coding=coding)

    def send(self, sms: OutgoingSms) -> SendResult:
        params, result = self._request(sms)
        try:
            response = self._client.get(self._settings.KANNEL_SENDSMS_URL, params=params)
        except httpx.TransportError as exc:
            raise _transport_failure(exc) from exc
        _raise_for_refusal(response)
        return result

    async def send_async(self, sms: OutgoingSms, client: httpx.AsyncClient) -> SendResult:
        """`send` over a shared async client (the batched send job sends many at once)."""
        params, result = self._request(sms)
        try:
            response = await client.get(self._settings.KANNEL_SENDSMS_URL, params=params)
        except httpx.TransportError as exc:
            raise _transport_failure(exc) from exc
        _raise_for_refusal(response)
        return result

    @staticmethod
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

    @staticmethod
    def parse_delivery_report(params: Mapping[str, str]) -> DeliveryReport:
        """A DLR from our dlr-url `ref=..&msg=..&token=..&status=%d&ts=%T`."""
        ref = params.get("ref", "").strip()
        if not ref:
            raise InboundRequestError("missing_field", "ref is required")
        if not _PLAIN.match(ref):
            raise InboundRequestError("invalid_field", "ref is not one of our message references")
        raw_status = params.get("status", "").strip()
        if not raw_status:
            raise InboundRequestError("missing_field", "status (Kannel %d) is required")
        if not raw_status.isdigit() or len(raw_status) > 4:
            raise InboundRequestError("invalid_field", "status must be a Kannel DLR code (1, 2, 4, 8, 16)")
        code = int(raw_status)
        attempt_id = params.get("msg", "").strip() or None
        return DeliveryReport(
            ref=ref,
            code=code,
            status=DLR_STATUS_NAMES.get(code, "unknown"),
            attempt_id=attempt_id,
            reported_at=_parse_epoch(params.get("ts", "")),
        )


def _transport_failure(exc: httpx.TransportError) -> SmsSendError:
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return SmsSendError(f"cannot reach Kannel: {type(exc).__name__}", retryable=True)
    # The request may have reached Kannel: the outbox must not send it again by itself.
    return SmsSendError(f"Kannel's answer was lost: {type(exc).__name__}", retryable=True, ambiguous=True)


def _raise_for_refusal(response: httpx.Response) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    body = response.text.strip()[:200]
    if status == 403:
        raise SmsSendError(f"Kannel refused the credentials (403): {body}", retryable=False)
    retryable = status >= 500 or status in _RETRYABLE_4XX
    raise SmsSendError(f"Kannel answered {status}: {body}", retryable=retryable)


def _parse_kannel_time(value: str) -> datetime | None:
    """Kannel's %t: `YYYY-MM-DD HH:MM:SS` in UTC (its `+` arrives decoded as a space)."""
    try:
        return datetime.strptime(value.strip().replace("+", " "), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None


def _parse_epoch(value: str) -> datetime | None:
    """Kannel's %T: unix seconds."""
    value = value.strip()
    if not value.isdigit() or len(value) > 12:
        return None
    return datetime.fromtimestamp(int(value), tz=UTC)
