"""Fixtures for the SMS channel: the web app around a recording dispatcher, and a real Kannel."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from redis import Redis
from sqlalchemy.orm import Session, sessionmaker

from bot.app import create_app
from bot.context import AppContext
from config.settings import Settings
from storage.crypto import PhoneVault
from tests.support.kannel import KannelBinaries, KannelHarness, ensure_kannel
from tests.support.services import free_port, require_or_skip


class RecordingDispatcher:
    """The JobDispatcher seam of the web app: records what would be queued for the workers."""

    def __init__(self, fail: bool = False) -> None:
        self.inbound: list[int] = []
        self.fail = fail

    def inbound_received(self, event_id: int) -> None:
        if self.fail:
            raise ConnectionError("queue unavailable")
        self.inbound.append(event_id)


@pytest.fixture
def dispatcher() -> RecordingDispatcher:
    return RecordingDispatcher()


@pytest.fixture
async def client(
    settings: Settings,
    sessions: sessionmaker[Session],
    vault: PhoneVault,
    redis: Redis,
    dispatcher: RecordingDispatcher,
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """The real app (create_app) on a test server, with the conftest settings."""
    context = AppContext(
        settings=settings, sessions=sessions, vault=vault, redis=redis, dispatcher=dispatcher
    )
    async with TestClient(TestServer(create_app(context))) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def kannel_binaries() -> KannelBinaries:
    binaries = ensure_kannel()
    require_or_skip(
        binaries is not None,
        "Kannel is not installed and cannot be installed here (apt-get install kannel kannel-extras as root)",
    )
    assert binaries is not None
    return binaries


@pytest.fixture
def webhook_port() -> int:
    """Where the tests run our web app; Kannel's sms-service and dlr-urls point here."""
    return free_port()


@pytest.fixture
def kannel(kannel_binaries: KannelBinaries, webhook_port: int, tmp_path: Path) -> Iterator[KannelHarness]:
    """A fresh Kannel per test: callbacks Kannel still retries never reach another test."""
    with KannelHarness(
        kannel_binaries, tmp_path / "kannel", webhook_base=f"http://127.0.0.1:{webhook_port}"
    ) as harness:
        yield harness
