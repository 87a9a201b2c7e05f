"""Fixtures for the intake: a small registry, the real aiohttp app, signed requests."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis import Redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.app import create_app
from bot.context import AppContext
from bot.intake import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from config.settings import Settings
from storage.crypto import PhoneVault
from storage.models import Agency, AgencyLevel, Base, Case, Survey, Timer
from tests.conftest import ONESTOP_SECRET

PATH = "/api/v1/cases/closed"


@dataclass
class RecordingDispatcher:
    """Stands in for the RQ dispatcher: the intake must not hand anything over (timers do)."""

    calls: list[tuple[str, int]] = field(default_factory=list)

    def inbound_received(self, event_id: int) -> None:
        self.calls.append(("inbound_received", event_id))


@pytest.fixture
def registry(sessions: sessionmaker[Session]) -> dict[str, int]:
    """HN → HN-TX → HN-TX-HD, HN-TX-KM; code -> id."""
    with sessions() as session, session.begin():
        hn = Agency(code="HN", name="UBND thành phố Hà Nội", level=AgencyLevel.PROVINCE)
        session.add(hn)
        session.flush()
        tx = Agency(code="HN-TX", name="UBND quận Thanh Xuân", level=AgencyLevel.DISTRICT, parent_id=hn.id)
        session.add(tx)
        session.flush()
        for code, name in (("HN-TX-HD", "UBND phường Hạ Đình"), ("HN-TX-KM", "UBND phường Khương Mai")):
            session.add(Agency(code=code, name=name, level=AgencyLevel.COMMUNE, parent_id=tx.id))
        session.flush()
        return {a.code: a.id for a in session.scalars(select(Agency))}


def case(**overrides: Any) -> dict[str, Any]:
    """A valid case object closed an hour ago (override any field; None removes it)."""
    data: dict[str, Any] = {
        "case_id": "H01.40-261120-0001",
        "agency_code": "HN-TX-HD",
        "procedure_code": "1.001612",
        "phone": "0912345678",
        "closed_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def counts(sessions: sessionmaker[Session]) -> dict[str, int]:
    """Rows per intake table: what a test asserts was (or was not) stored."""
    with sessions() as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
            for model in (Case, Survey, Timer)
        }


def table_rows(sessions: sessionmaker[Session]) -> int:
    """Rows in every table except the registry: nothing at all may be stored by a refused request."""
    with sessions() as session:
        return sum(
            session.scalar(select(func.count()).select_from(table)) or 0
            for table in Base.metadata.sorted_tables
            if table.name != "agencies"
        )


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
) -> AsyncIterator[TestClient[Any, Any]]:
    app = create_app(AppContext(settings, sessions, vault, redis, dispatcher))
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


def signed_headers(
    body: bytes, *, timestamp: int | None = None, secret: str = ONESTOP_SECRET
) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        TIMESTAMP_HEADER: str(ts),
        SIGNATURE_HEADER: sign(secret, ts, body),
        "Content-Type": "application/json",
    }


def body_of(document: object) -> bytes:
    return json.dumps(document, ensure_ascii=False).encode("utf-8")
