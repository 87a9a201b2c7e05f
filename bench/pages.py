"""Page response times with a year of data for a province (figures in docs/benchmarks.md).

    python -m bench.pages [--database-url postgresql://postgres@127.0.0.1:5432/postgres]
                          [--redis-url redis://127.0.0.1:6379/15] [--communes 126] [--repeat 5]

A fresh database (PostgreSQL when a server URL is given, else a temporary SQLite file) gets a
province with 12 departments and `--communes` communes, and 365 days of daily counts per unit as
the nightly job writes them (about 30 cases closed, 10 surveys and 4 answered per unit and day,
SMS and Zalo), plus citizens' comments. The real app then serves the pages over HTTP to a
logged-in province supervisor; each page is timed cold (the dashboard's report cache emptied)
and warm (median of --repeat). The counts are also copied as one procedure's (the procedure
filter's upper bound: every case of one procedure). Last, the morning after a nightly run: new
counts are written, the web process's warm-up (bot.web.dashboard.warm) builds the accounts' first
views, and the supervisor's first visit of `/` is timed.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import insert, text

from bot.app import create_app
from bot.context import AppContext
from bot.web.dashboard import REPORTS, warm
from config.logging import configure_logging
from config.settings import Settings
from flows.scores.counts import roll_up
from flows.scores.periods import yesterday
from storage.crypto import PhoneVault
from storage.db import dispose_engines, engine_for, session_factory
from storage.migrate import upgrade
from storage.models import (
    Agency,
    AgencyLevel,
    Case,
    Channel,
    Comment,
    DailyCount,
    Survey,
    SurveyStatus,
    UserRole,
)
from storage.redis import redis_for
from storage.users import add_user
from tests.support.services import RedisServer, postgres_database

SECRET = "bench-secret-key-0123456789abcdef"
PASSWORD = "bench-password-123"
CRITERIA = ("overall", "tiep_can", "thu_tuc", "cong_chuc", "ket_qua", "phan_anh")
PROCEDURE = "1.001612"


def _rows(units: list[int], first: date, days: int, rng: random.Random) -> Iterator[tuple[object, ...]]:
    now = datetime.now(UTC)
    for agency_id in units:
        quality = rng.uniform(0.6, 0.95)
        for offset in range(days):
            day = first + timedelta(days=offset)
            closed = rng.randint(20, 40)
            yield (agency_id, day, "all", "cases_closed", closed, 0, 0.0, 0.0, 0.0, now)
            yield (agency_id, day, "all", "cases_on_time", closed - 2, 0, 0.0, 0.0, 0.0, now)
            yield (agency_id, day, "all", "cases_late", 2, 0, 0.0, 0.0, 0.0, now)
            by_channel = {"sms": rng.randint(5, 9), "zalo": rng.randint(1, 4)}
            for channel in ("all", "sms", "zalo"):
                sent = sum(by_channel.values()) if channel == "all" else by_channel[channel]
                answered = max(1, sent * 2 // 5)
                for metric, n in (
                    ("surveys", sent),
                    ("surveys_sent", sent),
                    ("surveys_delivered", sent),
                    ("surveys_responded", answered),
                    ("surveys_completed", answered),
                    ("surveys_expired", sent - answered),
                ):
                    yield (agency_id, day, channel, metric, n, 0, 0.0, 0.0, 0.0, now)
                for criterion in CRITERIA:
                    k = min(answered, max(0, round(answered * quality + rng.uniform(-1, 1))))
                    w = answered * 3.0  # p = 1/3
                    yield (agency_id, day, channel, criterion, answered, k, w, k * 3.0, answered * 9.0, now)


def seed(url: str, communes: int, days: int) -> tuple[int, int]:
    """The province, its units, a year of daily counts and some comments; returns (units, rows)."""
    rng = random.Random(20251)
    sessions = session_factory(url)
    with sessions() as s, s.begin():
        province = Agency(code="HN", name="Thành phố Hà Nội", level=AgencyLevel.PROVINCE)
        s.add(province)
        s.flush()
        units = [province]
        for i in range(12):
            units.append(
                Agency(
                    code=f"HN-S{i:02d}",
                    name=f"Sở {i:02d}",
                    level=AgencyLevel.DEPARTMENT,
                    parent_id=province.id,
                )
            )
        for i in range(communes):
            units.append(
                Agency(
                    code=f"HN-P{i:03d}",
                    name=f"Phường {i:03d}",
                    level=AgencyLevel.COMMUNE,
                    parent_id=province.id,
                )
            )
        s.add_all(units[1:])
        s.flush()
        add_user(
            s, actor="bench", username="tinh", role=UserRole.SUPERVISOR, agency=province, password=PASSWORD
        )
        ids = [u.id for u in units[1:]]
    last = yesterday(Settings(_env_file=None).tz)  # type: ignore[call-arg]
    first = last - timedelta(days=days - 1)
    count = 0
    engine = engine_for(url)
    columns = ("agency_id", "day", "channel", "metric", "n", "k", "w", "wk", "w2", "computed_at")
    if engine.dialect.name == "postgresql":
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            with cursor.copy(f"COPY daily_counts ({', '.join(columns)}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                lines: list[str] = []
                for row in _rows(ids, first, days, rng):
                    lines.append("\t".join(str(value) for value in row))
                    if len(lines) == 50000:
                        copy.write("\n".join(lines) + "\n")
                        count += len(lines)
                        lines.clear()
                if lines:
                    copy.write("\n".join(lines) + "\n")
                    count += len(lines)
            raw.commit()
        finally:
            raw.close()
    else:
        batch: list[dict[str, object]] = []
        with sessions() as s, s.begin():
            for row in _rows(ids, first, days, rng):
                batch.append(dict(zip(columns, row, strict=True)))
                if len(batch) == 20000:
                    s.execute(insert(DailyCount), batch)
                    count += len(batch)
                    batch.clear()
            if batch:
                s.execute(insert(DailyCount), batch)
                count += len(batch)
    _comments(url, ids[:20], last, rng)
    with sessions() as s, s.begin():
        s.execute(
            text(
                "INSERT INTO daily_procedure_counts (procedure_code, agency_id, day, channel, metric, "
                "n, k, w, wk, w2, computed_at) SELECT :code, agency_id, day, channel, metric, n, k, w, wk, "
                "w2, computed_at FROM daily_counts"
            ),
            {"code": PROCEDURE},
        )
        s.execute(
            text("INSERT INTO procedures (code, name) VALUES (:code, 'Đăng ký khai sinh')"),
            {"code": PROCEDURE},
        )
    with sessions() as s, s.begin():  # what the nightly job writes beside the days it counts
        roll_up(s, first, last)
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(text("ANALYZE"))
    return len(ids) + 1, count


def _comments(url: str, agency_ids: list[int], last: date, rng: random.Random) -> None:
    """A few hundred comments on recent cases (the dashboard lists the latest of the period)."""
    with session_factory(url)() as s, s.begin():
        for n in range(300):
            agency_id = rng.choice(agency_ids)
            closed = datetime.combine(last - timedelta(days=n % 28), datetime.min.time(), UTC) + timedelta(
                hours=3
            )
            case = Case(
                case_id=f"B-{n}",
                agency_id=agency_id,
                procedure_code="1.001612",
                closed_at=closed,
                outcome="scheduled",
            )
            s.add(case)
            s.flush()
            survey = Survey(
                case_pk=case.id,
                agency_id=agency_id,
                flow_name="sipas-sms",
                channel=Channel.SMS,
                status=SurveyStatus.COMPLETED,
            )
            s.add(survey)
            s.flush()
            s.add(
                Comment(survey_id=survey.id, question_key="overall", text=f"Ý kiến số {n}: cán bộ nhiệt tình")
            )


async def measure(settings: Settings, repeat: int) -> list[str]:
    context = AppContext(
        settings=settings,
        sessions=session_factory(settings.DATABASE_URL),
        vault=PhoneVault(SECRET),
        redis=redis_for(settings.REDIS_URL),
        dispatcher=_NoDispatch(),
    )
    app = create_app(context)
    last = yesterday(settings.tz)
    quarter = f"{last.year}-Q{(last.month - 1) // 3 + 1}"
    pages = [
        ("dashboard, this month", f"/?period={last:%Y-%m}"),
        ("dashboard, the year (365 days)", f"/?period={last - timedelta(days=364)}..{last}"),
        ("dashboard, this year", f"/?period={last.year}"),
        ("dashboard, this quarter", f"/?period={quarter}"),
        ("dashboard, last 7 days", f"/?period={last - timedelta(days=6)}..{last}"),
        ("dashboard, last month", f"/?period={last.replace(day=1) - timedelta(days=1):%Y-%m}"),
        ("dashboard, one commune, month", f"/?agency=HN-P001&period={last:%Y-%m}"),
        ("dashboard, one department, year", f"/?agency=HN-S01&period={last.year}"),
        ("dashboard, SMS only, month", f"/?period={last:%Y-%m}&channel=sms"),
        ("dashboard, Zalo only, quarter", f"/?period={quarter}&channel=zalo"),
        ("dashboard, one procedure, month", f"/?period={last:%Y-%m}&procedure={PROCEDURE}"),
        ("dashboard, one procedure, year", f"/?period={last.year}&procedure={PROCEDURE}"),
        ("Excel export, month", f"/export.xlsx?period={last:%Y-%m}&agency=HN"),
        ("digest archive", "/digests"),
        ("log-in form", "/login"),
    ]
    lines = []
    async with TestServer(app) as server:
        base = str(server.make_url("")).rstrip("/")
        async with httpx.AsyncClient(base_url=base, timeout=120, follow_redirects=False) as http:
            form = await http.get("/login")
            token = form.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
            logged = await http.post(
                "/login", data={"username": "tinh", "password": PASSWORD, "csrf_token": token}
            )
            assert logged.status_code == 303, logged.text
            for name, path in pages:
                app[REPORTS].clear()  # cold: nothing cached
                start = time.perf_counter()
                answer = await http.get(path)
                cold = (time.perf_counter() - start) * 1000
                if answer.status_code not in (200, 303):
                    lines.append(f"{name:34s} HTTP {answer.status_code}")
                    continue
                warmed = []
                for _ in range(repeat):
                    start = time.perf_counter()
                    await http.get(path)
                    warmed.append((time.perf_counter() - start) * 1000)
                lines.append(
                    f"{name:34s} cold {cold:8.0f} ms   warm median {statistics.median(warmed):6.0f} ms   "
                    f"({len(answer.content) // 1024} KiB)"
                )
            lines.extend(await _morning(context, app, http))
    context.redis.close()
    return lines


async def _morning(
    context: AppContext, app: web.Application, http: httpx.AsyncClient, nights: int = 3
) -> list[str]:
    """`nights` times: new counts as the nightly job writes them (one row rewritten: the cache's
    generation moves, the figures stay), the warm-up, then the supervisor's first visit of `/`."""
    lines = []
    for night in range(1, nights + 1):
        with context.sessions() as s, s.begin():
            s.execute(
                text(
                    "WITH gone AS (DELETE FROM daily_counts WHERE id = (SELECT max(id) FROM daily_counts) "
                    "RETURNING agency_id, day, channel, metric, n, k, w, wk, w2, computed_at) "
                    "INSERT INTO daily_counts "
                    "(agency_id, day, channel, metric, n, k, w, wk, w2, computed_at) SELECT * FROM gone"
                )
            )
        start = time.perf_counter()
        views = await asyncio.to_thread(warm, context, app[REPORTS])
        took = time.perf_counter() - start
        start = time.perf_counter()
        answer = await http.get("/")
        first = (time.perf_counter() - start) * 1000
        lines.append(
            f"night {night}: warm-up built {views} first view(s) in {took:.1f} s; "
            f"the supervisor's first visit of / took {first:.0f} ms (HTTP {answer.status_code})"
        )
    return lines


class _NoDispatch:
    def inbound_received(self, event_id: int) -> None:
        """Pages dispatch nothing."""

    def surveys_scheduled(self) -> None:
        """Pages dispatch nothing."""


@contextmanager
def _database(url: str | None) -> Iterator[str]:
    if url:
        with postgres_database(url) as fresh:
            yield fresh
        return
    with tempfile.TemporaryDirectory() as tmp:
        yield f"sqlite:///{Path(tmp) / 'bench.db'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="PostgreSQL server URL (a fresh database is made on it)")
    parser.add_argument("--redis-url")
    parser.add_argument("--communes", type=int, default=126)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    configure_logging("WARNING")
    with ExitStack() as stack:
        redis_url = args.redis_url
        if not redis_url:
            server = RedisServer(Path(stack.enter_context(tempfile.TemporaryDirectory())))
            server.start()
            stack.callback(server.stop)
            redis_url = server.url
        url = stack.enter_context(_database(args.database_url))
        upgrade(url)
        start = time.perf_counter()
        units, rows = seed(url, args.communes, args.days)
        took = time.perf_counter() - start
        print(f"seeded {units} units, {rows:,} daily-count rows in {took:.0f} s ({url.split(':')[0]})")
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            DATABASE_URL=url,
            REDIS_URL=redis_url,
            SIPAS_SECRET_KEY=SECRET,
            ONESTOP_WEBHOOK_SECRET="bench-onestop-secret-0123456789",
            KANNEL_MO_TOKEN="bench-mo-token-0123456789",
        )
        for line in asyncio.run(measure(settings, args.repeat)):
            print(line)
        dispose_engines()


if __name__ == "__main__":
    main()
