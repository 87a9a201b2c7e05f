"""Sending through the brandname API: one JSON POST per message, authenticated by the API key.

The request (the contract is in bot/channels/brandname/__init__.py):

    POST BRANDNAME_API_URL
    Authorization: Bearer <BRANDNAME_API_KEY>
    {"to": "84912345678", "from": SMS_SENDER, "text": "...", "unicode": false, "ref": "42",
     "callback_url": "<SIPAS_PUBLIC_URL>/webhooks/sms/brandname/status"}

How an answer is classified (SmsSendError):

| answer                                           | retryable | ambiguous |
|--------------------------------------------------|-----------|-----------|
| 2xx with a message_id                            | (sent)    |           |
| 2xx without a readable message_id                | no        | yes: it may have been taken |
| 400, 401, 403, 402, 404, 409, 422 (any other 4xx) | no       |           |
| 408, 429 (Retry-After honoured), 5xx             | yes       |           |
| connection refused / connect timeout             | yes       |           |
| read timeout, connection dropped after sending   | yes       | no: `ref` is the idempotency key |

The provider de-duplicates on `ref` (our outbox id): the same ref sent again answers the first
message_id and sends nothing. So, unlike Kannel, a lost answer is simply retried.
"""

from __future__ import annotations

import re
import unicodedata

import httpx

from bot.channels.closing import Closing
from bot.channels.sms import OutgoingSms, SendResult, SmsSendError, count_segments, sms_coding
from config.settings import Settings
from flows.phones import to_msisdn

__all__ = ["STATUS_PATH", "BrandnameSender"]

STATUS_PATH = "/webhooks/sms/brandname/status"
_RETRYABLE_4XX = {408, 429}
_MSISDN = re.compile(r"^\+?\d{6,15}$")
_MESSAGE_ID = re.compile(r"^[A-Za-z0-9._:~-]{1,100}$")


class BrandnameSender(Closing):
    """The send side of the brandname API (bot.channels.sms.SmsSender)."""

    def __init__(self, settings: Settings) -> None:
        settings.require("BRANDNAME_API_URL", "BRANDNAME_API_KEY", "SMS_SENDER")
        self._settings = settings
        self._callback_url = f"{settings.public_url}{STATUS_PATH}"

    def _request(self, sms: OutgoingSms) -> tuple[dict[str, object], str]:
        if not _MSISDN.match(sms.to):
            raise SmsSendError("recipient is not an international phone number", retryable=False)
        if not sms.ref.isdigit():
            raise SmsSendError(f"ref {sms.ref!r} is not an outbox id", retryable=False)
        text = unicodedata.normalize("NFC", sms.text)
        body = {
            "to": to_msisdn(sms.to),
            "from": self._settings.SMS_SENDER,
            "text": text,
            "unicode": sms_coding(text) == "ucs2",
            "ref": sms.ref,
            "callback_url": self._callback_url,
        }
        return body, text

    async def send_async(self, sms: OutgoingSms, client: httpx.AsyncClient) -> SendResult:
        body, text = self._request(sms)
        headers = {"Authorization": f"Bearer {self._settings.BRANDNAME_API_KEY}"}
        try:
            response = await client.post(self._settings.BRANDNAME_API_URL, json=body, headers=headers)
        except httpx.TransportError as exc:
            where = "cannot reach" if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout) else "lost"
            # Either way safe to retry: the API de-duplicates on ref.
            raise SmsSendError(f"brandname API {where}: {type(exc).__name__}", retryable=True) from exc
        return _result(response, text)


def _result(response: httpx.Response, text: str) -> SendResult:
    status = response.status_code
    if 200 <= status < 300:
        try:
            data = response.json()
        except ValueError:
            data = None
        message_id = data.get("message_id") if isinstance(data, dict) else None
        if not isinstance(message_id, str) or not _MESSAGE_ID.match(message_id):
            raise SmsSendError(
                f"brandname API answered {status} without a message_id", retryable=False, ambiguous=True
            )
        return SendResult(provider_id=message_id, segments=count_segments(text), coding=sms_coding(text))
    reason = _error_code(response)
    if status >= 500 or status in _RETRYABLE_4XX:
        raise SmsSendError(
            f"brandname API answered {status} {reason}", retryable=True, retry_after=_retry_after(response)
        )
    raise SmsSendError(f"brandname API refused the message ({status} {reason})", retryable=False)


def _error_code(response: httpx.Response) -> str:
    """The API's machine-readable error code (`{"error": {"code": ...}}`), never the whole body."""
    try:
        data = response.json()
    except ValueError:
        return ""
    error = data.get("error") if isinstance(data, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return str(code)[:60] if isinstance(code, str | int) else ""


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    return float(value) if value.isdigit() and len(value) < 6 else None
