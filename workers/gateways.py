"""Which API sends an outbox row, behind one async interface for the batched send job.

`Senders` lives for one batch of the send drain (workers.sending), inside the `asyncio.run` of
that batch: SMS go through the provider SIPAS_SMS_PROVIDER selects (bot.channels.registry: Kannel,
or the brandname HTTP API) over one pooled httpx.AsyncClient, so a
batch of hundreds reuses a few keep-alive connections; Zalo rows go through the Zalo providers'
send modules, one per route: Bot Platform sendMessage to a chat (bot.channels.zalo_bot.send), OA
customer-service message to a user id and ZNS template by phone (bot.channels.zalo_oa.send).
Nothing outlives the batch's event loop.

Every failure becomes a SendError that says what the outbox should do with the row:

| failure                                                  | retryable | unreachable |
|----------------------------------------------------------|-----------|-------------|
| Kannel 5xx, connection refused                           | yes       |             |
| Kannel read timeout, connection dropped after the request | (ambiguous: kept `unknown`) |  |
| brandname API: bot/channels/brandname/send.py's table (a lost answer is retried: ref is idempotent) | | |
| Zalo read timeout, connection dropped after the request   | (ambiguous: kept `unknown`) |  |
| Zalo 5xx, connect failure, unreadable answer, -32 / 429  | yes       |             |
| Zalo token refused again after the client's one refresh  | no        |             |
| Zalo "cannot reach this person" (-108 -118 -114 -119 -139 -141 -213 -230, bot 403) | no | yes |
| anything else (bad request, credentials)                 | no        |             |

`unreachable` asks the send job to move the survey to SMS at once (flows.zalo_survey).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Self, TypeVar

import httpx

from bot.channels import registry
from bot.channels.sms import OutgoingSms, SmsSender, SmsSendError
from bot.channels.zalo.exceptions import (
    ZaloAnswerLost,
    ZaloError,
    ZaloPermanentError,
    ZaloRateLimited,
    ZaloServerError,
    ZaloTokenInvalid,
    ZaloUnreachable,
)
from bot.channels.zalo.token_store import DatabaseTokenStore
from bot.channels.zalo_bot import send as zalo_bot_send
from bot.channels.zalo_oa import send as zalo_oa_send
from flows.phones import to_msisdn
from storage.models import Channel, Route
from workers.runtime import Runtime

SMS_CONNECTIONS = 20  # keep-alive connections to the SMS provider per worker process
T = TypeVar("T")
_LOOP: asyncio.AbstractEventLoop | None = None
_SHARED: Senders | None = None

__all__ = [
    "Outgoing",
    "SendError",
    "Senders",
    "Sent",
    "failure_from_zalo",
    "route_of",
    "run_async",
    "shared_senders",
]


@dataclass(frozen=True)
class Outgoing:
    """One claimed outbox row, decrypted, ready for its API."""

    message_id: int
    survey_id: int | None
    route: Route
    to: str  # E.164 phone (SMS, ZNS), OA user id, or bot chat id
    text: str
    payload: dict[str, Any] | None = None


@dataclass(frozen=True)
class Sent:
    provider_id: str
    segments: int
    coding: str  # gsm7 / ucs2 for SMS; "text" or "template" on Zalo


class SendError(Exception):
    """The API did not take the message; the flags tell the outbox and the survey what to do."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        unreachable: bool = False,
        retry_after: float | None = None,
        code: int | None = None,
        ambiguous: bool = False,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.ambiguous = ambiguous  # the API may have taken it: never resent by itself
        self.unreachable = unreachable
        self.retry_after = retry_after
        self.code = code


def route_of(channel: Channel, route: Route | None) -> Route:
    """A row's route; rows stored before routes existed go by their channel's usual API."""
    if route is not None:
        return route
    return Route.SMS if channel is Channel.SMS else Route.ZALO_OA


def failure_from_zalo(exc: ZaloError) -> SendError:
    """The outbox's view of a typed Zalo failure (see the module docstring's table)."""
    if isinstance(exc, ZaloUnreachable):
        return SendError(str(exc), retryable=False, unreachable=True, code=exc.code)
    if isinstance(exc, ZaloAnswerLost):
        return SendError(str(exc), retryable=True, ambiguous=True, code=exc.code)
    if isinstance(exc, ZaloRateLimited):
        return SendError(str(exc), retryable=True, retry_after=exc.retry_after, code=exc.code)
    if isinstance(exc, ZaloServerError):
        return SendError(str(exc), retryable=True, code=exc.code)
    if isinstance(exc, ZaloTokenInvalid | ZaloPermanentError):
        # OA/ZNS clients already refreshed the token and retried once; a bot token is fixed.
        return SendError(str(exc), retryable=False, code=exc.code)
    return SendError(str(exc), retryable=exc.retryable, code=exc.code)


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on the worker process's one event loop, kept between batches so that the
    pooled HTTP client of `shared_senders` (its keep-alive connections, its TLS context) is built
    once per process, not once per batch."""
    global _LOOP
    if _LOOP is None or _LOOP.is_closed():
        _LOOP = asyncio.new_event_loop()
    return _LOOP.run_until_complete(coro)


def shared_senders(runtime: Runtime) -> Senders:
    """The process's Senders for `run_async` (never closed: it lives as long as the worker)."""
    global _SHARED
    if _SHARED is None or _SHARED.runtime is not runtime:
        _SHARED = Senders(runtime)
    return _SHARED


class Senders:
    """The APIs of a send batch: `async with Senders(runtime) as senders: await senders.send(m)`,
    or the process-wide `shared_senders(runtime)` on `run_async`'s loop."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._runtime = runtime
        self._sms: SmsSender | None = None
        self._client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.aclose()
        if self._sms is not None:
            self._sms.close()

    def _token_store(self) -> DatabaseTokenStore:
        runtime = self._runtime
        runtime.settings.require("ZALO_OA_APP_ID", "ZALO_APP_SECRET")
        return DatabaseTokenStore(
            runtime.sessions, runtime.vault, runtime.redis, runtime.settings.ZALO_OA_APP_ID
        )

    async def send(self, message: Outgoing) -> Sent:
        """Hand one message to its API; every failure is a SendError (module docstring)."""
        if message.route is Route.SMS:
            return await self._send_sms(message)
        try:
            return await self._send_zalo(message)
        except ZaloError as exc:
            raise failure_from_zalo(exc) from exc

    async def _send_sms(self, message: Outgoing) -> Sent:
        if self._sms is None:
            self._sms = registry.sms_sender(self._runtime.settings)
            timeout = float(self._runtime.settings.SIPAS_SEND_TIMEOUT)
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
                limits=httpx.Limits(
                    max_connections=SMS_CONNECTIONS, max_keepalive_connections=SMS_CONNECTIONS
                ),
            )
        assert self._client is not None
        sms = OutgoingSms(to=message.to, text=message.text, ref=str(message.message_id))
        try:
            result = await self._sms.send_async(sms, self._client)
        except SmsSendError as exc:
            raise SendError(
                str(exc), retryable=exc.retryable, ambiguous=exc.ambiguous, retry_after=exc.retry_after
            ) from exc
        return Sent(result.provider_id or str(message.message_id), result.segments, result.coding)

    async def _send_zalo(self, message: Outgoing) -> Sent:
        settings = self._runtime.settings
        if message.route is Route.ZALO_BOT:
            sent = await zalo_bot_send.send_text(settings, message.to, message.text)
            return Sent(sent.message_id, 1, "text")
        if message.route is Route.ZALO_OA:
            result = await zalo_oa_send.send_cs_text(settings, self._token_store(), message.to, message.text)
            return Sent(result.message_id, 1, "text")
        if message.route is Route.ZNS:
            template = await zalo_oa_send.send_rating_template(
                settings, self._token_store(), to_msisdn(message.to), message.payload or {},
                tracking_id=str(message.survey_id or message.message_id),
            )  # fmt: skip
            return Sent(template.msg_id, 1, "template")
        raise ZaloPermanentError(f"route {message.route} is not a Zalo route", method="send")
