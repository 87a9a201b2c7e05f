"""Which provider sends an outbox row, behind one async interface for the batched send job.

`Senders` asks the channel registry (bot.channels.registry.for_route) for the provider serving a
row's route: SMS through the one SIPAS_SMS_PROVIDER names (Kannel, or the brandname HTTP API),
the `zalo_bot` route through the Zalo Bot Platform, `zalo_oa` and `zns` through the Official
Account. Each provider's sender is built once, on first use, and keeps its pooled HTTP client, so
a batch of hundreds reuses a few keep-alive connections. Every failure is a
bot.channels.outgoing.SendError, mapped by the provider's own send module; this module knows no
provider's codes.

The worker keeps one Senders and one event loop for its whole life (`shared_senders`,
`run_async`): the senders' connections and TLS contexts are built once per process.
"""

from __future__ import annotations

import asyncio
import atexit
from collections.abc import Coroutine
from typing import Any, Self, TypeVar

from bot.channels import registry
from bot.channels.outgoing import Outgoing, Sender, SendError, Sent
from config.settings import MissingSettingError
from storage.models import Channel, Route
from workers.runtime import Runtime

T = TypeVar("T")
_LOOP: asyncio.AbstractEventLoop | None = None
_SHARED: Senders | None = None

__all__ = ["Senders", "route_of", "run_async", "shared_senders"]


def route_of(channel: Channel, route: Route | None) -> Route:
    """A row's route; rows stored before routes existed go by their channel's usual API."""
    if route is not None:
        return route
    return Route.SMS if channel is Channel.SMS else Route.ZALO_OA


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on the worker process's one event loop, kept between batches so that the
    pooled HTTP clients of `shared_senders` are built once per process, not once per batch."""
    global _LOOP
    if _LOOP is None or _LOOP.is_closed():
        _LOOP = asyncio.new_event_loop()
    return _LOOP.run_until_complete(coro)


async def shared_senders(runtime: Runtime) -> Senders:
    """The process's Senders, on `run_async`'s loop: it lives as long as the worker. One built
    for another runtime (tests build one per test) is closed first, on this loop, where its
    connections were opened."""
    global _SHARED
    if _SHARED is not None and _SHARED.runtime is not runtime:
        await _SHARED.__aexit__()
        _SHARED = None
    if _SHARED is None:
        _SHARED = Senders(runtime)
    return _SHARED


@atexit.register
def close_shared_senders() -> None:
    """Close the process's Senders on the loop that opened their connections, at exit: an
    aiohttp session left open warns (ResourceWarning) when the interpreter collects it."""
    global _SHARED
    if _SHARED is not None and _LOOP is not None and not _LOOP.is_closed():
        _LOOP.run_until_complete(_SHARED.__aexit__())
    _SHARED = None


class Senders:
    """The providers' senders: `async with Senders(runtime) as senders: await senders.send(m)`,
    or the process-wide `shared_senders(runtime)` on `run_async`'s loop."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._built: dict[str, Sender] = {}  # provider name -> its sender

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for sender in self._built.values():
            await sender.aclose()

    async def send(self, message: Outgoing) -> Sent:
        """Hand one message to the provider of its route; every failure is a SendError."""
        settings = self.runtime.settings
        try:
            provider = registry.for_route(message.route, settings)
            sender = self._built.get(provider.name)
            if sender is None:
                sender = self._built[provider.name] = provider.sender(self.runtime)
        except MissingSettingError as exc:  # nothing left: not ambiguous, and no retry will help
            raise SendError(str(exc), retryable=False) from exc
        return await sender.send(message)
