"""Measure the hot paths and print figures (never asserted in tests).

    python -m bench [--database-url URL] [--redis-url URL] [--cases N] [--replies N]

Without --database-url a temporary SQLite file is used; with a PostgreSQL server URL a fresh
database is created on it and dropped afterwards. Without --redis-url a local redis-server is
started. Paths measured:
  intake   POST /api/v1/cases/closed through the real aiohttp app (signature, validation, DB)
  parser   flows.understanding.parse_reply over the labelled corpus
  inbound  workers.inbound.process: one citizen SMS → answer recorded, next question queued
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from aiohttp.test_utils import TestServer

from bot.app import create_app
from bot.context import AppContext
from bot.intake import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from config.logging import configure_logging
from config.settings import PROJECT_ROOT, Settings
from flows.understanding import ReplyKind, parse_reply
from storage.crypto import PhoneVault
from storage.db import dispose_engines, session_factory
from storage.inbound import store_event
from storage.migrate import upgrade
from storage.models import Agency, AgencyLevel
from storage.redis import redis_for
from tests.support.services import RedisServer, postgres_database
from workers import inbound
from workers.runtime import Runtime
from workers.timers import fire

SECRET = "bench-secret-key-0123456789abcdef"
HOOK_SECRET = "bench-onestop-secret"


class _NoDispatch:
    def inbound_received(self, event_id: int) -> None:
        """Benchmarks drive the jobs themselves."""


def _percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def _case(n: int, now: datetime) -> dict[str, object]:
    return {
        "case_id": f"BENCH-{n:07d}",
        "agency_code": "B-1",
        "procedure_code": "1.001612",
        "phone": f"09{n:08d}",
        "closed_at": (now - timedelta(minutes=5)).isoformat(),
    }


async def bench_intake(settings: Settings, cases: int) -> list[str]:
    vault = PhoneVault(SECRET)
    context = AppContext(
        settings=settings,
        sessions=session_factory(settings.DATABASE_URL),
        vault=vault,
        redis=redis_for(settings.REDIS_URL),
        dispatcher=_NoDispatch(),
    )
    now = datetime.now(UTC)
    lines = []
    async with TestServer(create_app(context)) as server, httpx.AsyncClient(timeout=60) as client:
        url = str(server.make_url("/api/v1/cases/closed"))

        async def post(body: object) -> float:
            raw = json.dumps(body).encode()
            stamp = str(int(time.time()))
            headers = {TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: sign(HOOK_SECRET, stamp, raw)}
            start = time.perf_counter()
            response = await client.post(url, content=raw, headers=headers)
            elapsed = time.perf_counter() - start
            assert response.status_code == 202, response.text
            return elapsed

        single = [await post(_case(n, now)) for n in range(cases // 4)]
        lines.append(
            f"intake, one case a request: {len(single)} requests, "
            f"p50 {_percentile(single, 50) * 1000:.1f} ms, p95 {_percentile(single, 95) * 1000:.1f} ms, "
            f"{len(single) / sum(single):.0f} cases/s"
        )
        batch = 100
        start = time.perf_counter()
        offset = cases // 4
        for first in range(offset, offset + cases, batch):
            await post({"cases": [_case(n, now) for n in range(first, first + batch)]})
        elapsed = time.perf_counter() - start
        lines.append(
            f"intake, batches of {batch}: {cases} cases in {elapsed:.2f} s, {cases / elapsed:.0f} cases/s"
        )
    return lines


def bench_parser(repeat: int) -> list[str]:
    corpus = [
        json.loads(line) for line in (PROJECT_ROOT / "tests/data/replies.jsonl").read_text().splitlines()
    ]
    items = [(row["text"], ReplyKind(row["kind"])) for row in corpus]
    start = time.perf_counter()
    for _ in range(repeat):
        for text, kind in items:
            parse_reply(text, kind)
    elapsed = time.perf_counter() - start
    total = repeat * len(items)
    return [f"parser: {total} replies in {elapsed:.2f} s, {total / elapsed:.0f} replies/s, "
            f"{elapsed / total * 1e6:.1f} µs each"]  # fmt: skip


def bench_inbound(settings: Settings, replies: int) -> list[str]:
    runtime = Runtime.build(settings)
    vault = runtime.vault
    from sqlalchemy import select

    from storage.models import Survey, Timer

    with runtime.sessions() as session:
        timers = session.scalars(select(Timer.id).order_by(Timer.id).limit(replies)).all()
    start = time.perf_counter()
    for timer_id in timers:
        fire(runtime, timer_id)
    started = time.perf_counter() - start
    with runtime.sessions() as session, session.begin():
        surveys = session.scalars(select(Survey).where(Survey.status == "active").limit(replies)).all()
        events = []
        for n, survey in enumerate(surveys):
            phone = vault.decrypt(survey.case.phone_enc or "")
            payload = {"id": f"mo-{n}", "from": phone.lstrip("+"), "to": "8040", "text": "5",
                       "ts": "2026-11-22 03:00:00"}  # fmt: skip
            stored = store_event(
                session,
                provider="kannel",
                kind="mo",
                provider_id=f"mo-{n}",
                payload_enc=vault.encrypt(json.dumps(payload)),
                sender_hash=survey.phone_hash,
            )
            events.append(stored.event_id)
    timings = []
    for event_id in events:
        t0 = time.perf_counter()
        result, _ids = inbound.process(runtime, event_id)
        timings.append(time.perf_counter() - t0)
        assert result.startswith("survey"), result
    return [
        f"start survey (timer job): {len(timers)} surveys in {started:.2f} s, {len(timers) / started:.0f}/s",
        f"inbound reply → answer + next question: {len(timings)} replies, p50 "
        f"{_percentile(timings, 50) * 1000:.1f} ms, p95 {_percentile(timings, 95) * 1000:.1f} ms, "
        f"{len(timings) / sum(timings):.0f} replies/s",
    ]


@contextmanager
def _database(url: str | None) -> Iterator[str]:
    if url:
        with postgres_database(url) as fresh:
            yield fresh
        return
    with tempfile.TemporaryDirectory() as tmp:
        yield f"sqlite:///{tmp}/bench.db"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", help="a PostgreSQL server URL (a fresh database is created)")
    parser.add_argument("--redis-url")
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--replies", type=int, default=300)
    args = parser.parse_args()
    configure_logging("WARNING")
    with ExitStack() as stack:
        db_url = stack.enter_context(_database(args.database_url))
        redis_url = args.redis_url
        if not redis_url:
            server = RedisServer(Path(stack.enter_context(tempfile.TemporaryDirectory())))
            server.start()
            stack.callback(server.stop)
            redis_url = server.url
        upgrade(db_url)
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            DATABASE_URL=db_url,
            REDIS_URL=redis_url,
            SIPAS_SECRET_KEY=SECRET,
            ONESTOP_WEBHOOK_SECRET=HOOK_SECRET,
            KANNEL_MO_TOKEN="bench-mo-token-0123",
            SIPAS_SEND_WINDOW="00:00-24:00",
            SIPAS_FREQUENCY_CAP_DAYS=0,
        )
        with session_factory(db_url)() as session, session.begin():
            session.add(Agency(code="B-1", name="UBND phường Bench", level=AgencyLevel.COMMUNE))
        backend = db_url.split(":", 1)[0]
        print(f"# sipas-bot benchmarks, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
              f"Python {platform.python_version()}, database {backend}")  # fmt: skip
        for line in asyncio.run(bench_intake(settings, args.cases)):
            print(line, flush=True)
        for line in bench_parser(repeat=50):
            print(line, flush=True)
        for line in bench_inbound(settings, args.replies):
            print(line, flush=True)
        redis_for(redis_url).close()
        redis_for.cache_clear()
        dispose_engines()


if __name__ == "__main__":
    main()
