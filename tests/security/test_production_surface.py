"""What the public port shows: /metrics only with its token (or on a private port), /readyz that
proves the database takes writes, and no `Server` header naming versions."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from redis import Redis
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from storage.crypto import PhoneVault
from storage.models import ReadinessProbe
from tests.support.app import Client, RecordingDispatcher, app_client
from tests.support.services import free_port

METRICS_TOKEN = "metrics-token-0123456789"


@pytest.fixture
async def web(
    settings: Settings, sessions: sessionmaker[Session], vault: PhoneVault, redis: Redis
) -> AsyncIterator[Client]:
    guarded = settings.model_copy(update={"SIPAS_METRICS_TOKEN": METRICS_TOKEN})
    async with app_client(guarded, sessions, vault, redis, RecordingDispatcher()) as client:
        yield client


async def test_metrics_need_the_bearer_token(web: Client) -> None:
    await web.get("/healthz")
    for headers, status in (
        ({}, 401),
        ({"Authorization": "Bearer "}, 401),
        ({"Authorization": f"Basic {METRICS_TOKEN}"}, 401),
        ({"Authorization": "Bearer wrong-token-0123456789"}, 403),
        ({"Authorization": f"Bearer {METRICS_TOKEN.upper()}"}, 403),
    ):
        response = await web.get("/metrics", headers=headers)
        assert response.status == status, headers
        assert "sipas_http_requests_total" not in await response.text()
    good = await web.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert good.status == 200
    assert 'sipas_http_requests_total{route="/healthz",status="200"}' in await good.text()


async def test_without_a_token_metrics_are_not_on_the_web_port(client: Client) -> None:
    response = await client.get("/metrics", headers={"Authorization": "Bearer anything-at-all-000"})
    assert response.status == 404
    assert "sipas_http" not in await response.text()


async def test_metrics_on_a_private_port_without_token(
    settings: Settings, sessions: sessionmaker[Session], vault: PhoneVault, redis: Redis
) -> None:
    port = free_port()
    private = settings.model_copy(update={"SIPAS_METRICS_PORT": port})
    async with app_client(private, sessions, vault, redis, RecordingDispatcher()) as client:
        await client.get("/healthz")
        assert (await client.get("/metrics")).status == 404  # not on the public port
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as response:
            assert response.status == 200
            assert "sipas_http_requests_total" in await response.text()
            assert "aiohttp" not in response.headers.get("Server", "")
    with pytest.raises(aiohttp.ClientConnectionError):  # closed with the app
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics"):
            pass


async def test_no_server_header_with_versions(client: Client) -> None:
    for path in ("/healthz", "/nope", "/webhooks/sms/kannel"):
        response = await client.get(path)
        assert response.headers["Server"] == "sipas-bot"


def _read_only(url: str) -> str:
    """The same database through a connection that refuses writes."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return f"sqlite:///file:{parsed.database}?mode=ro&uri=true"
    return (
        parsed.set(drivername="postgresql+psycopg")
        .update_query_dict({"options": "-c default_transaction_read_only=on"})
        .render_as_string(hide_password=False)
    )


@pytest.fixture
def read_only_sessions(any_db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = create_engine(_read_only(any_db_url))
    yield sessionmaker(bind=engine)
    engine.dispose()


async def test_readyz_is_503_when_the_database_is_read_only(
    settings: Settings, read_only_sessions: sessionmaker[Session], vault: PhoneVault, redis: Redis
) -> None:
    with read_only_sessions() as session:  # it still answers reads
        assert session.scalar(select(func.count()).select_from(ReadinessProbe)) == 0
    async with app_client(settings, read_only_sessions, vault, redis, RecordingDispatcher()) as client:
        ready = await client.get("/readyz")
        assert ready.status == 503
        body = await ready.json()
        assert body["database"].startswith("error: ")
        assert body["redis"] == "ok"


async def test_readyz_leaves_no_probe_row(client: Client, sessions: sessionmaker[Session]) -> None:
    assert (await client.get("/readyz")).status == 200
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(ReadinessProbe)) == 0
