"""The app's own routes and its error contract: health, readiness, metrics, JSON errors."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from redis import Redis

from bot.errors import json_errors
from bot.intake import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from config.settings import Settings
from storage.crypto import PhoneVault
from storage.db import session_factory
from tests.conftest import ONESTOP_SECRET
from tests.support.app import Client, app_client


class NoDispatch:
    def inbound_received(self, event_id: int) -> None:
        raise AssertionError("nothing should be dispatched here")


@pytest.fixture
def dispatcher() -> NoDispatch:
    """The shared `client` fixture (tests/conftest.py) runs with this one here."""
    return NoDispatch()


@pytest.fixture
async def broken_db_client(settings: Settings, vault: PhoneVault, redis: Redis) -> AsyncIterator[Client]:
    """The app with a database that refuses connections (nothing listens on port 1)."""
    sessions = session_factory("postgresql://nobody@127.0.0.1:1/none")
    async with app_client(settings, sessions, vault, redis, NoDispatch()) as test_client:
        yield test_client


async def test_healthz_and_readyz(client: Client) -> None:
    health = await client.get("/healthz")
    assert health.status == 200
    assert await health.json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert await ready.json() == {"status": "ok", "database": "ok", "redis": "ok"}


async def test_readyz_names_the_part_that_is_down(broken_db_client: Client) -> None:
    ready = await broken_db_client.get("/readyz")
    assert ready.status == 503
    body = await ready.json()
    assert body["status"] == "unavailable"
    assert body["database"].startswith("error: ")
    assert body["redis"] == "ok"


async def test_database_down_at_intake_is_503_not_500(broken_db_client: Client) -> None:
    """A database that cannot be reached means "could not store, retry" (503), never a 500."""
    raw = json.dumps({"case_id": "X1", "agency_code": "HN", "procedure_code": "1.1", "phone": "0912345678",
                      "closed_at": "2026-11-20T10:00:00+07:00"}).encode()  # fmt: skip
    stamp = str(int(time.time()))
    response = await broken_db_client.post(
        "/api/v1/cases/closed",
        data=raw,
        headers={TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: sign(ONESTOP_SECRET, stamp, raw)},
    )
    assert response.status == 503
    assert (await response.json())["error"] == "storage_unavailable"


async def test_unexpected_failure_is_a_json_500() -> None:
    """The json_errors middleware answers a bug with a bare JSON 500 (no details leak)."""

    async def broken(_request: web.Request) -> web.Response:
        raise RuntimeError("a bug with a secret in its message")

    app = web.Application(middlewares=[json_errors])
    app.router.add_get("/broken", broken)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/broken")
        assert response.status == 500
        assert await response.json() == {
            "error": "internal_error",
            "message": "the service failed to handle this request; retry later",
        }


async def test_unknown_route_and_method_are_json(client: Client) -> None:
    missing = await client.get("/nope")
    assert missing.status == 404
    assert (await missing.json())["error"] == "not_found"
    wrong = await client.get("/api/v1/cases/closed")
    assert wrong.status == 405
    assert (await wrong.json())["error"] == "method_not_allowed"


METRICS = {"Authorization": "Bearer metrics-token-0123456789"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"SIPAS_METRICS_TOKEN": METRICS["Authorization"][7:]})


async def test_metrics_count_requests_by_route(client: Client) -> None:
    await client.get("/healthz")
    metrics = await (await client.get("/metrics", headers=METRICS)).text()
    assert 'sipas_http_requests_total{route="/healthz",status="200"}' in metrics


async def test_a_refused_request_is_answered_and_counted_with_its_status(client: Client) -> None:
    refused = await client.get("/webhooks/sms/kannel")  # no token: refused by a check deep inside
    assert refused.status == 401
    assert await refused.json() == {"error": "missing_token", "message": "the token parameter is required"}
    metrics = await (await client.get("/metrics", headers=METRICS)).text()
    assert 'sipas_http_requests_total{route="/webhooks/sms/kannel",status="401"}' in metrics
