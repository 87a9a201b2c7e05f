"""Which API sends an outbox row, behind one synchronous interface for the send job.

SMS go through Kannel (bot.channels.kannel). Zalo rows go through the async clients of bot.zalo,
one per route: Bot Platform sendMessage to a chat, OA customer-service message to a user id,
ZNS template by phone. RQ jobs are synchronous, so a Zalo send runs its client inside
`asyncio.run`: one short HTTP exchange per job, and the event loop, the httpx client and its
connections all live and die inside the job (no loop shared between forked work-horses).

Every failure becomes a SendError that says what the outbox should do with the row:

| failure                                                  | retryable | unreachable |
|----------------------------------------------------------|-----------|-------------|
| Kannel 5xx, connection refused                           | yes       |             |
| Kannel read timeout, connection dropped after the request | (ambiguous: kept `unknown`) |  |
| Zalo 5xx, timeout, unreadable answer, -32 / 429          | yes       |             |
| Zalo token refused again after the client's one refresh  | no        |             |
| Zalo "cannot reach this person" (-108 -118 -114 -119 -139 -141 -213 -230, bot 403) | no | yes |
| anything else (bad request, credentials)                 | no        |             |

`unreachable` asks the send job to move the survey to SMS at once (flows.zalo_survey).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Self

from bot.channels.closing import Closing
from bot.channels.kannel import KannelGateway
from bot.channels.sms import OutgoingSms, SmsSendError
from bot.zalo.bot_api import ZaloBotClient
from bot.zalo.exceptions import (
    ZaloError,
    ZaloPermanentError,
    ZaloRateLimited,
    ZaloServerError,
    ZaloTokenInvalid,
    ZaloUnreachable,
)
from bot.zalo.oa_api import ZaloOAClient, ZNSClient
from bot.zalo.token_store import DatabaseTokenStore
from flows.phones import to_msisdn
from storage.models import Channel, Route
from workers.runtime import Runtime

__all__ = [
    "Gateway",
    "Outgoing",
    "SendError",
    "Sent",
    "SmsRoute",
    "ZaloRoute",
    "failure_from_zalo",
    "gateway_for",
    "route_of",
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


class Gateway(Protocol):
    def send(self, message: Outgoing) -> Sent: ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


def route_of(channel: Channel, route: Route | None) -> Route:
    """A row's route; rows stored before routes existed go by their channel's usual API."""
    if route is not None:
        return route
    return Route.SMS if channel is Channel.SMS else Route.ZALO_OA


class SmsRoute(Closing):
    """SMS through Kannel."""

    def __init__(self, runtime: Runtime) -> None:
        self._kannel = KannelGateway(runtime.settings)

    def close(self) -> None:
        self._kannel.close()

    def send(self, message: Outgoing) -> Sent:
        sms = OutgoingSms(to=message.to, text=message.text, ref=str(message.message_id))
        try:
            result = self._kannel.send(sms)
        except SmsSendError as exc:
            raise SendError(str(exc), retryable=exc.retryable, ambiguous=exc.ambiguous) from exc
        return Sent(result.provider_id or str(message.message_id), result.segments, result.coding)


def failure_from_zalo(exc: ZaloError) -> SendError:
    """The outbox's view of a typed Zalo failure (see the module docstring's table)."""
    if isinstance(exc, ZaloUnreachable):
        return SendError(str(exc), retryable=False, unreachable=True, code=exc.code)
    if isinstance(exc, ZaloRateLimited):
        return SendError(str(exc), retryable=True, retry_after=exc.retry_after, code=exc.code)
    if isinstance(exc, ZaloServerError):
        return SendError(str(exc), retryable=True, code=exc.code)
    if isinstance(exc, ZaloTokenInvalid | ZaloPermanentError):
        # OA/ZNS clients already refreshed the token and retried once; a bot token is fixed.
        return SendError(str(exc), retryable=False, code=exc.code)
    return SendError(str(exc), retryable=exc.retryable, code=exc.code)


class ZaloRoute(Closing):
    """Zalo Bot Platform, OA and ZNS: each send opens its client inside its own event loop."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def _token_store(self) -> DatabaseTokenStore:
        runtime = self._runtime
        runtime.settings.require("ZALO_OA_APP_ID", "ZALO_APP_SECRET")
        return DatabaseTokenStore(
            runtime.sessions, runtime.vault, runtime.redis, runtime.settings.ZALO_OA_APP_ID
        )

    def send(self, message: Outgoing) -> Sent:
        try:
            return asyncio.run(self._send(message))
        except ZaloError as exc:
            raise failure_from_zalo(exc) from exc

    async def _send(self, message: Outgoing) -> Sent:
        settings = self._runtime.settings
        if message.route is Route.ZALO_BOT:
            if not settings.ZALO_BOT_TOKEN:
                raise ZaloPermanentError("ZALO_BOT_TOKEN is not set", method="sendMessage")
            async with ZaloBotClient(settings.ZALO_BOT_TOKEN, settings.ZALO_BOT_API_BASE) as bot:
                sent = await bot.send_message(message.to, message.text)
            return Sent(sent.message_id, 1, "text")
        if message.route is Route.ZALO_OA:
            async with ZaloOAClient(
                settings.ZALO_OA_API_BASE,
                settings.ZALO_OAUTH_BASE,
                settings.ZALO_OA_APP_ID,
                settings.ZALO_APP_SECRET,
                self._token_store(),
            ) as oa:
                result = await oa.send_cs_message(message.to, message.text)
            return Sent(result.message_id, 1, "text")
        if message.route is Route.ZNS:
            payload = message.payload or {}
            template_id = str(payload.get("template_id") or "")
            if not template_id:
                raise ZaloPermanentError(
                    "no ZNS template id (ZNS_RATING_TEMPLATE_ID)", method="/message/template"
                )
            async with ZNSClient(
                settings.ZNS_API_BASE,
                settings.ZALO_OAUTH_BASE,
                settings.ZALO_OA_APP_ID,
                settings.ZALO_APP_SECRET,
                self._token_store(),
            ) as zns:
                template = await zns.send_template(
                    to_msisdn(message.to),
                    template_id,
                    dict(payload.get("template_data") or {}),
                    tracking_id=str(payload.get("tracking_id") or message.survey_id or message.message_id),
                )
            return Sent(template.msg_id, 1, "template")
        raise ZaloPermanentError(f"route {message.route} is not a Zalo route", method="send")


def gateway_for(runtime: Runtime, route: Route) -> Gateway:
    """A new gateway for one job; the caller closes it (`with gateway_for(...) as gw`)."""
    if route is Route.SMS:
        return SmsRoute(runtime)
    return ZaloRoute(runtime)
