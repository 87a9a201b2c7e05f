"""What the intake benchmarks share: a fresh migrated PostgreSQL database with the benchmark
agency, and the environment `sipas` processes get (the settings the load harness prescribes)."""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from contextlib import contextmanager

from storage.db import dispose_engines, session_factory
from storage.migrate import upgrade
from storage.models import Agency, AgencyLevel
from tests.support.services import postgres_database

SECRET = "bench-secret-key-0123456789abcdef"
AGENCY = "B-1"


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


@contextmanager
def prepared_database(server_url: str) -> Iterator[str]:
    """A fresh database on `server_url`, migrated, with agency B-1 (sampling every case)."""
    with postgres_database(server_url) as url:
        upgrade(url)
        with session_factory(url)() as session, session.begin():
            session.add(Agency(code=AGENCY, name="UBND phường Bench", level=AgencyLevel.COMMUNE))
        dispose_engines()
        yield url


def bench_env(database_url: str, redis_url: str) -> dict[str, str]:
    """Settings of the benchmarked processes: every case surveyed at once, quiet logs."""
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SIPAS_SECRET_KEY": SECRET,
        "KANNEL_MO_TOKEN": "bench-mo-token-0123456789abcdef",
        "SIPAS_SEND_WINDOW": "00:00-24:00",
        "SIPAS_FIRST_MESSAGE_DELAY": "0",
        "SIPAS_FREQUENCY_CAP_DAYS": "0",
        "LOG_LEVEL": "WARNING",
    }
