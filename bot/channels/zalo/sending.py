"""What both Zalo providers' senders (zalo_bot/send.py, zalo_oa/send.py) share: one pooled
httpx.AsyncClient per sender, lent to a fresh API client per message (`ZaloSender.http`), and
what a typed Zalo failure means for the outbox (`failure_from_zalo`, raised as
bot.channels.outgoing.SendError):

| failure                                                              | retryable | other flag  |
|----------------------------------------------------------------------|-----------|-------------|
| read timeout, connection dropped after the request (ZaloAnswerLost)   | yes       | ambiguous   |
| 5xx, connect failure, unreadable answer (ZaloServerError)             | yes       |             |
| -32, 429 (ZaloRateLimited)                                            | yes       | retry_after |
| token refused again after the OA client's one refresh; a bot token    | no        |             |
| no Zalo, blocked, not a follower (-108 -118 -114 -119 -139 -141 -213 -230, bot 403) | no | unreachable |
| anything else (bad request, credentials)                              | no        |             |

Ambiguous: kept `unknown`, never resent by itself. Unreachable: the survey moves to SMS at once.
"""

from __future__ import annotations

import httpx

from bot.channels.outgoing import SendError
from bot.channels.zalo.exceptions import (
    ZaloAnswerLost,
    ZaloError,
    ZaloPermanentError,
    ZaloRateLimited,
    ZaloServerError,
    ZaloTokenInvalid,
    ZaloUnreachable,
)

__all__ = ["ZaloSender", "failure_from_zalo"]


class ZaloSender:
    """Base of the Zalo senders: keeps one httpx.AsyncClient between sends (its keep-alive
    connections and TLS context), so a batch of Zalo messages does not open one per message."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._http: httpx.AsyncClient | None = None

    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self._timeout)
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()


def failure_from_zalo(exc: ZaloError) -> SendError:
    """The outbox's view of a typed Zalo failure (the module docstring's table)."""
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
