"""Sending through the brandname API: one JSON POST per message, authenticated by the API key.

The request (the contract is in bot/channels/brandname/__init__.py):

    POST BRANDNAME_API_URL
    Authorization: Bearer <BRANDNAME_API_KEY>
    {"to": "84912345678", "from": SMS_SENDER, "text": "...", "unicode": false, "ref": "42",
     "callback_url": "<SIPAS_PUBLIC_URL>/webhooks/sms/brandname/status"}

How an answer is classified (bot.channels.outgoing.SendError):

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

import json
import re
import unicodedata

import aiohttp

from bot.channels.http import TRANSPORT_ERRORS, never_sent, open_session
from bot.channels.outgoing import Outgoing, SendError, Sent
from bot.channels.sms import count_segments, sms_coding
from config.settings import Settings
from flows.phones import to_msisdn

__all__ = ["STATUS_PATH", "BrandnameSender"]

STATUS_PATH = "/webhooks/sms/brandname/status"
_RETRYABLE_4XX = {408, 429}
_MSISDN = re.compile(r"^\+?\d{6,15}$")
_MESSAGE_ID = re.compile(r"^[A-Za-z0-9._:~-]{1,100}$")


class BrandnameSender:
    """The send side of the brandname API (bot.channels.outgoing.Sender)."""

    def __init__(self, settings: Settings) -> None:
        settings.require("BRANDNAME_API_URL", "BRANDNAME_API_KEY", "SMS_SENDER")
        self._settings = settings
        self._callback_url = f"{settings.public_url}{STATUS_PATH}"
        self._headers = {
            "Authorization": f"Bearer {settings.BRANDNAME_API_KEY}",
            "Content-Type": "application/json",
        }
        self._http: aiohttp.ClientSession | None = None

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def send(self, message: Outgoing) -> Sent:
        if not _MSISDN.match(message.to):
            raise SendError("recipient is not an international phone number", retryable=False)
        text = unicodedata.normalize("NFC", message.text)
        coding = sms_coding(text)
        body = {
            "to": to_msisdn(message.to),
            "from": self._settings.SMS_SENDER,
            "text": text,
            "unicode": coding == "ucs2",
            "ref": str(message.message_id),
            "callback_url": self._callback_url,
        }
        if self._http is None:
            self._http = open_session(float(self._settings.SIPAS_SEND_TIMEOUT))
        try:
            async with self._http.post(
                self._settings.BRANDNAME_API_URL, data=json.dumps(body), headers=self._headers
            ) as response:
                status, answer = response.status, await response.read()
                retry_after = response.headers.get("Retry-After", "")
        except TRANSPORT_ERRORS as exc:
            where = "cannot reach" if never_sent(exc) else "lost"
            # Either way safe to retry: the API de-duplicates on ref.
            raise SendError(f"brandname API {where}: {type(exc).__name__}", retryable=True) from exc
        data = _json(answer)
        if 200 <= status < 300:
            message_id = data.get("message_id") if isinstance(data, dict) else None
            if not isinstance(message_id, str) or not _MESSAGE_ID.match(message_id):
                raise SendError(
                    f"brandname API answered {status} without a message_id", retryable=False, ambiguous=True
                )
            return Sent(provider_id=message_id, segments=count_segments(text), coding=coding)
        reason = _error_code(data)
        if status >= 500 or status in _RETRYABLE_4XX:
            raise SendError(
                f"brandname API answered {status} {reason}",
                retryable=True,
                retry_after=_seconds(retry_after),
                code=status,
            )
        raise SendError(
            f"brandname API refused the message ({status} {reason})", retryable=False, code=status
        )


def _json(answer: bytes) -> object:
    try:
        return json.loads(answer)
    except ValueError:  # not JSON, or not UTF-8
        return None


def _error_code(data: object) -> str:
    """The API's machine-readable error code (`{"error": {"code": ...}}`), never the whole body."""
    error = data.get("error") if isinstance(data, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return str(code)[:60] if isinstance(code, str | int) else ""


def _seconds(value: str) -> float | None:
    value = value.strip()
    return float(value) if value.isdigit() and len(value) < 6 else None
