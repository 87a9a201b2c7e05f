"""The real app (create_app, real database and Redis) served on a local port from a background
thread, for fuzzers that speak HTTP."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from aiohttp import web
from redis import Redis
from sqlalchemy.orm import Session, sessionmaker

from bot.app import create_app
from bot.context import AppContext
from config.settings import Settings
from storage.crypto import PhoneVault
from tests.security.webhook_client import configured
from tests.support.app import RecordingDispatcher
from tests.support.services import free_port, wait_for_port

ONESTOP = "onestop-fuzz-secret-0123"
METRICS_TOKEN = "metrics-fuzz-token-0123"


class LiveApp:
    """create_app on 127.0.0.1:<free port>, in its own event loop thread."""

    def __init__(self, context: AppContext) -> None:
        self.context = context
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(create_app(context), access_log=None)
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        self._loop.run_forever()

    def start(self) -> None:
        self._thread.start()
        wait_for_port(self.port)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()


@pytest.fixture
def live_app(
    settings: Settings, sessions: sessionmaker[Session], vault: PhoneVault, redis: Redis
) -> Iterator[LiveApp]:
    fuzz_settings = configured(settings).model_copy(
        update={"ONESTOP_WEBHOOK_SECRET": ONESTOP, "SIPAS_METRICS_TOKEN": METRICS_TOKEN}
    )
    context = AppContext(
        settings=fuzz_settings, sessions=sessions, vault=vault, redis=redis, dispatcher=RecordingDispatcher()
    )
    app = LiveApp(context)
    app.start()
    yield app
    app.stop()
