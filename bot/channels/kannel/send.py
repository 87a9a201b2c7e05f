"""Sending through Kannel: MT by `GET /cgi-bin/sendsms` (MO and DLR callbacks: webhooks.py, parse.py).

Choices worth knowing (see docs/kannel.md):

- Coding: GSM-7 (`coding=0`) when the NFC text fits the GSM alphabet, else UCS-2 (`coding=2`);
  always `charset=UTF-8`, without which Kannel garbles UCS-2 text.
- Kannel's sendsms reply carries no message id, so each attempt gets a fresh id of ours
  (uuid4 hex) that is both the Sent.provider_id and a parameter of the dlr-url: a delivery
  report names the outbox row (`ref`, our outbox id) and the attempt (`msg`) it is about.
- The dlr-url is expanded by Kannel, where `%A`..`%F` (and most letters) after a `%` are escape
  codes, so it holds only plain ASCII of ours: the outbox id, the attempt id and a per-message
  token, HMAC(KANNEL_MO_TOKEN, ref), so that a leaked callback URL can touch one message only.

How an answer is classified (bot.channels.outgoing.SendError):

| answer                                                       | retryable | ambiguous |
|--------------------------------------------------------------|-----------|-----------|
| 2xx ("0: Accepted for delivery", "3: Queued for later ...")  | (sent)    |           |
| 403 (bad credentials), any other 4xx                         | no        |           |
| 5xx, 408, 429                                                | yes       |           |
| connection refused, no connection in time                    | yes       |           |
| read timeout, connection dropped after the request           | yes       | yes       |

Ambiguous: Kannel may have taken it (SMS gateways offer no idempotency key), so the outbox keeps
the row `unknown` until its delivery report or an operator settles it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
import uuid
from urllib.parse import urlencode

import aiohttp
from yarl import URL

from bot.channels.http import TRANSPORT_ERRORS, never_sent, open_session
from bot.channels.outgoing import Outgoing, SendError, Sent
from bot.channels.sms import count_segments, sms_coding
from config.settings import Settings
from flows.phones import to_msisdn

__all__ = ["DLR_MASK_ALL", "DLR_PATH", "KannelSender", "dlr_token"]

DLR_PATH = "/webhooks/sms/kannel/dlr"
# 1 delivered + 2 failed + 4 buffered + 8 SMSC accepted + 16 SMSC rejected: every report.
DLR_MASK_ALL = 31
_CODING_PARAM = {"gsm7": "0", "ucs2": "2"}
_RETRYABLE_4XX = {408, 429}
_MSISDN = re.compile(r"^\+?\d{6,15}$")


def dlr_token(secret: str, ref: str) -> str:
    """The token Kannel's dlr-url carries for outbox row `ref` (lowercase hex: no `%` escapes)."""
    return hmac.new(secret.encode("utf-8"), f"kannel-dlr:{ref}".encode(), hashlib.sha256).hexdigest()[:32]


class KannelSender:
    """One Kannel smsbox reached over HTTP (bot.channels.outgoing.Sender)."""

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
        # Every request's fixed parameters, encoded once.
        fixed = urlencode(
            {
                "username": settings.KANNEL_USERNAME,
                "password": settings.KANNEL_PASSWORD,
                "from": settings.SMS_SENDER,
                "charset": "UTF-8",
                "dlr-mask": str(DLR_MASK_ALL),
            }
        )
        url = settings.KANNEL_SENDSMS_URL
        self._url_prefix = f"{url}{'&' if '?' in url else '?'}{fixed}&"
        self._timeout = timeout or float(settings.SIPAS_SEND_TIMEOUT)
        self._http: aiohttp.ClientSession | None = None

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()

    def dlr_url(self, ref: str, attempt_id: str) -> str:
        """The callback Kannel calls for every delivery report of this attempt (%d, %T: Kannel's)."""
        query = urlencode(
            {"ref": ref, "msg": attempt_id, "token": dlr_token(self._settings.KANNEL_MO_TOKEN, ref)}
        )
        return f"{self._dlr_base}?{query}&status=%d&ts=%T"

    async def send(self, message: Outgoing) -> Sent:
        if not _MSISDN.match(message.to):
            raise SendError("recipient is not an international phone number", retryable=False)
        text = unicodedata.normalize("NFC", message.text)
        coding = sms_coding(text)
        attempt_id = uuid.uuid4().hex
        query = urlencode(
            {
                "to": to_msisdn(message.to),
                "text": text,
                "coding": _CODING_PARAM[coding],
                "dlr-url": self.dlr_url(str(message.message_id), attempt_id),
            }
        )
        if self._http is None:
            self._http = open_session(self._timeout)
        try:
            async with self._http.get(URL(self._url_prefix + query, encoded=True)) as response:
                status, body = response.status, await response.read()
        except TRANSPORT_ERRORS as exc:
            raise _transport_failure(exc) from exc
        if not 200 <= status < 300:
            raise _refusal(status, body.decode("utf-8", "replace").strip()[:200])
        return Sent(provider_id=attempt_id, segments=count_segments(text), coding=coding)


def _transport_failure(exc: BaseException) -> SendError:
    if never_sent(exc):
        return SendError(f"cannot reach Kannel: {type(exc).__name__}", retryable=True)
    # The request may have reached Kannel: the outbox must not send it again by itself.
    return SendError(f"Kannel's answer was lost: {type(exc).__name__}", retryable=True, ambiguous=True)


def _refusal(status: int, body: str) -> SendError:
    if status == 403:
        return SendError(f"Kannel refused the credentials (403): {body}", retryable=False, code=status)
    retryable = status >= 500 or status in _RETRYABLE_4XX
    return SendError(f"Kannel answered {status}: {body}", retryable=retryable, code=status)
