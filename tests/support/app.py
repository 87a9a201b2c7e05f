"""The web app under test: the real create_app around the test parts, and a job dispatcher that
records what the app hands to the workers instead of queueing it."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from redis import Redis
from sqlalchemy.orm import Session, sessionmaker

from bot.app import create_app
from bot.context import AppContext, JobDispatcher
from config.settings import Settings
from storage.crypto import PhoneVault

Client = TestClient[web.Request, web.Application]


class RecordingDispatcher:
    """The JobDispatcher seam of the web app: records what would be queued for the workers.
    With `fail` set, handing over raises, as it does when Redis is down."""

    def __init__(self, fail: bool = False) -> None:
        self.inbound: list[int] = []
        self.scheduled = 0  # intake requests that opened surveys
        self.fail = fail

    def inbound_received(self, event_id: int) -> None:
        if self.fail:
            raise ConnectionError("queue unavailable")
        self.inbound.append(event_id)

    def surveys_scheduled(self) -> None:
        if self.fail:
            raise ConnectionError("queue unavailable")
        self.scheduled += 1


def app_client(
    settings: Settings,
    sessions: sessionmaker[Session],
    vault: PhoneVault,
    redis: Redis,
    dispatcher: JobDispatcher,
) -> Client:
    """The real app (create_app) on a test server; open it with `async with`."""
    context = AppContext(
        settings=settings, sessions=sessions, vault=vault, redis=redis, dispatcher=dispatcher
    )
    return TestClient(TestServer(create_app(context)))
