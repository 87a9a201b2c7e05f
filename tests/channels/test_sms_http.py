"""The SMS senders' pooled aiohttp client (bot/channels/http.py) never sends a message twice by
itself: a keep-alive connection that drops after the request went out is an ambiguous failure,
not a silent second request (aiohttp would retry an idempotent GET, Kannel's sendsms, once)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bot.channels.kannel import KannelSender
from bot.channels.outgoing import Outgoing, SendError
from config.settings import Settings
from storage.models import Route

ACCEPTED = b"HTTP/1.1 202 Accepted\r\nContent-Length: 24\r\n\r\n0: Accepted for delivery"


class DroppingKannel:
    """Answers the first request of each connection, then closes the connection on reading the
    second without answering (as a gateway that took the message and went away would)."""

    def __init__(self) -> None:
        self.requests = 0
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for answer in (True, False):
            try:
                await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                break
            self.requests += 1
            if answer:
                writer.write(ACCEPTED)
                await writer.drain()
        writer.close()


@pytest.fixture
async def dropping() -> AsyncIterator[DroppingKannel]:
    kannel = DroppingKannel()
    server = await asyncio.start_server(kannel.handle, "127.0.0.1", 0)
    kannel.port = server.sockets[0].getsockname()[1]
    async with server:
        yield kannel


async def test_a_dropped_keep_alive_connection_is_ambiguous_and_not_retried(
    settings: Settings, dropping: DroppingKannel
) -> None:
    url = f"http://127.0.0.1:{dropping.port}/cgi-bin/sendsms"
    sender = KannelSender(settings.model_copy(update={"KANNEL_SENDSMS_URL": url}))
    try:
        await sender.send(Outgoing(1, None, Route.SMS, "+84912345678", "Cau 1"))
        with pytest.raises(SendError) as lost:
            await sender.send(Outgoing(2, None, Route.SMS, "+84912345678", "Cau 2"))
    finally:
        await sender.aclose()
    assert (lost.value.retryable, lost.value.ambiguous) == (True, True)
    assert dropping.requests == 2  # the second message went out once
