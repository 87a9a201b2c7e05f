"""Sending through Kannel: MT by `GET /cgi-bin/sendsms` (MO and DLR callbacks: webhooks.py, parse.py).

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
from urllib.parse import urlencode

import httpx

from bot.channels.closing import Closing
from bot.channels.kannel.parse import PLAIN
from bot.channels.sms import OutgoingSms, SendResult, SmsSendError, count_segments, sms_coding
from config.settings import Settings
from flows.phones import to_msisdn

__all__ = ["DLR_MASK_ALL", "DLR_PATH", "KannelGateway", "dlr_token"]

DLR_PATH = "/webhooks/sms/kannel/dlr"
# 1 delivered + 2 failed + 4 buffered + 8 SMSC accepted + 16 SMSC rejected: every report.
DLR_MASK_ALL = 31
_CODING_PARAM = {"gsm7": "0", "ucs2": "2"}
_RETRYABLE_4XX = {408, 429}
_MSISDN = re.compile(r"^\+?\d{6,15}$")


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
        if not PLAIN.match(sms.ref):
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
