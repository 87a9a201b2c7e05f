"""Fixtures for the intake: a small registry, case bodies, signed requests (the app: tests/conftest.py)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.intake import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from storage.models import Agency, AgencyLevel, Base, Case, Survey, Timer
from tests.conftest import ONESTOP_SECRET

PATH = "/api/v1/cases/closed"


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
