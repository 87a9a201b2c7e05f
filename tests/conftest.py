"""Shared fixtures: real databases (SQLite and PostgreSQL), a real Redis, settings, the vault."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis import Redis
from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from bot.context import JobDispatcher
from config.settings import Settings
from storage.crypto import PhoneVault
from storage.db import session_factory
from storage.migrate import upgrade
from storage.models import Base
from storage.redis import redis_for
from tests.support.app import Client, RecordingDispatcher, app_client
from tests.support.services import IN_CI, local_redis, postgres_database, require_or_skip

SECRET_KEY = "test-secret-key-0123456789abcdef"
ONESTOP_SECRET = "onestop-test-secret"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str | None]:
    """A migrated PostgreSQL database for this session, or None when TEST_DATABASE_URL is unset."""
    server = os.environ.get("TEST_DATABASE_URL")
    if not server:
        if IN_CI:
            raise RuntimeError("CI=true but TEST_DATABASE_URL is unset: PostgreSQL tests must run")
        yield None
        return
    with postgres_database(server) as url:
        upgrade(url)
        yield url


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'sipas.db'}"
    upgrade(url)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db_url(request: pytest.FixtureRequest, sqlite_url: str, postgres_url: str | None) -> Iterator[str]:
    """Parametrises a test over both backends; PostgreSQL is skipped only outside CI."""
    if request.param == "postgresql":
        require_or_skip(postgres_url is not None, "TEST_DATABASE_URL is not set")
        assert postgres_url is not None
        url = postgres_url
    else:
        url = sqlite_url
    _empty(url)
    yield url


@pytest.fixture
def db_url(sqlite_url: str, postgres_url: str | None) -> Iterator[str]:
    """The main backend: PostgreSQL when configured (always in CI), else SQLite. Emptied per test."""
    url = postgres_url or sqlite_url
    _empty(url)
    yield url


def _empty(url: str) -> None:
    with session_factory(url)() as session, session.begin():
        for table in reversed(Base.metadata.sorted_tables):
            session.execute(delete(table))


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("TEST_REDIS_URL")
    if configured:
        yield configured
        return
    if IN_CI:
        raise RuntimeError("CI=true but TEST_REDIS_URL is unset: Redis tests must run")
    with local_redis(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def redis(redis_url: str) -> Iterator[Redis]:
    client = redis_for(redis_url)
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def settings(db_url: str, redis_url: str) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        DATABASE_URL=db_url,
        REDIS_URL=redis_url,
        SIPAS_SECRET_KEY=SECRET_KEY,
        ONESTOP_WEBHOOK_SECRET=ONESTOP_SECRET,
        KANNEL_MO_TOKEN="mo-token-test-0123",
        KANNEL_USERNAME="sipas",
        KANNEL_PASSWORD="kannel-pass",
        SIPAS_SEND_WINDOW="00:00-24:00",
        SIPAS_MIN_RESPONSES=30,
    )


@pytest.fixture
def sessions(db_url: str) -> sessionmaker[Session]:
    return session_factory(db_url)


@pytest.fixture
def vault() -> PhoneVault:
    return PhoneVault(SECRET_KEY)


@pytest.fixture
def dispatcher() -> RecordingDispatcher:
    return RecordingDispatcher()


@pytest.fixture
async def client(
    settings: Settings,
    sessions: sessionmaker[Session],
    vault: PhoneVault,
    redis: Redis,
    dispatcher: JobDispatcher,
) -> AsyncIterator[Client]:
    """The real app (create_app) on a test server, with the settings above and `dispatcher`
    (a RecordingDispatcher unless a test module overrides that fixture)."""
    async with app_client(settings, sessions, vault, redis, dispatcher) as test_client:
        yield test_client


@pytest.fixture
def tmp_var(tmp_path: Path) -> Path:
    return tmp_path
