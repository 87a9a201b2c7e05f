"""`make bench`: every figure of issue 9 in one go, on PostgreSQL and Redis with real processes.

    python -m bench [--database-url URL] [--redis-url URL] [--quick] [--citizens N] [--messages N]
                    [--cases N] [--rows N] [--aiogram-citizens N] [--only NAME ...]

Runs, one after the other (NAME for --only in brackets):
  [parser]   flows.understanding.parse_reply over the labelled corpus, in this process
  [intake]   signed batches of 1,000 cases posted to `sipas web` (bench.intake_http)
  [import]   `sipas cases import` of a generated file (bench.intake_import)
  [sms]      the sms_load harness end to end against web, worker and cron (bench.sms_load)
  [acks]     the same harness with --acks-only: webhook acknowledgements alone
  [floor]    the same harness against bench.floor, the least a durable service can do per answer
             (one process, one grouped INSERT per group of MOs, no queue, ORM or encryption):
             the ceiling of any design on this machine, 1,000 citizens in flight
  [aiogram]  aiogram 3's FSM with RedisStorage on the same 3-question survey and the same Redis
             (bench.aiogram_fsm; the optional `bench` extra, which `make bench` installs)
and ends with a summary: each figure, the issue's target, and the ratio of our replies end to end
to aiogram's updates/s measured in the same run.

The PostgreSQL server gets a fresh database per step (dropped afterwards). Without --redis-url
(or BENCH_REDIS_URL) a throwaway redis-server is started; a given Redis database is flushed.
Full sizes are the issue's (20,000 citizens, 1,000,000 rows); --quick runs a smoke test of each
in a few minutes. Figures are printed, never asserted: record them with the machine, the date and
the load average in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from config.logging import configure_logging
from config.settings import PROJECT_ROOT
from flows.understanding import ReplyKind, parse_reply
from tests.support.services import local_redis

STEPS = ("parser", "intake", "import", "sms", "acks", "floor", "aiogram")


@dataclass(frozen=True)
class Sizes:
    citizens: int
    messages: int
    cases: int
    rows: int
    aiogram_citizens: int


FULL = Sizes(citizens=20_000, messages=60_000, cases=20_000, rows=1_000_000, aiogram_citizens=20_000)
QUICK = Sizes(citizens=2_000, messages=10_000, cases=5_000, rows=50_000, aiogram_citizens=2_000)


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def bench_parser(repeat: int = 50) -> list[str]:
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
    return [f"parser: {total} replies in {elapsed:.2f} s, {total / elapsed:,.0f} replies/s, "
            f"{elapsed / total * 1e6:.1f} µs each"]  # fmt: skip


@contextmanager
def _redis(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    with tempfile.TemporaryDirectory() as tmp, local_redis(Path(tmp)) as started:
        yield started


def _step(name: str, summary: dict[str, Any], run: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """run(*args, **kwargs) under a heading; printed lines it returns go to the summary too."""
    print(f"\n## {name} (load average {load_average()})", flush=True)
    started = time.monotonic()
    try:
        result = run(*args, **kwargs)
        if isinstance(result, list):
            for line in result:
                print(line, flush=True)
            summary[name] = result[0] if result else ""
        return result
    except Exception as exc:  # one step failing must not hide the others' figures
        print(f"{name} failed: {type(exc).__name__}: {exc}", flush=True)
        summary[f"{name} error"] = f"{type(exc).__name__}: {exc}"
        return None
    finally:
        print(f"# {name}: {time.monotonic() - started:.0f} s", flush=True)


def _harness(database_url: str, redis_url: str, out: Path, **kwargs: Any) -> dict[str, Any]:
    from bench import sms_load

    code = sms_load.run(database_url=database_url, redis_url=redis_url, out=out, **kwargs)
    results: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
    results["exit"] = code
    return results


def _floor(database_url: str, out: Path, citizens: int) -> dict[str, Any]:
    from bench import floor

    code = floor.run(database_url=database_url, citizens=citizens, concurrency=1000, out=out)
    results: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
    results["exit"] = code
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="a PostgreSQL server URL (fresh databases are created and dropped)",
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("BENCH_REDIS_URL"), help="flushed; else a new one"
    )
    parser.add_argument("--quick", action="store_true", help="smoke sizes (minutes, not an hour)")
    parser.add_argument("--citizens", type=int, help="sms_load citizens (full: 20,000)")
    parser.add_argument("--messages", type=int, help="--acks-only webhook calls (full: 60,000)")
    parser.add_argument("--cases", type=int, help="intake cases over HTTP (full: 20,000)")
    parser.add_argument("--rows", type=int, help="cases import rows (full: 1,000,000)")
    parser.add_argument("--aiogram-citizens", type=int, help="citizens through aiogram (full: 20,000)")
    parser.add_argument("--only", nargs="+", choices=STEPS, help="run only these steps")
    args = parser.parse_args()
    base = QUICK if args.quick else FULL
    sizes = Sizes(
        citizens=args.citizens or base.citizens,
        messages=args.messages or base.messages,
        cases=args.cases or base.cases,
        rows=args.rows or base.rows,
        aiogram_citizens=args.aiogram_citizens or base.aiogram_citizens,
    )
    steps = args.only or STEPS
    configure_logging("WARNING")
    print(
        f"# sipas-bot benchmarks, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()} "
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average {load_average()}; sizes {sizes}",
        flush=True,
    )
    summary: dict[str, Any] = {}
    with ExitStack() as stack:
        redis_url = stack.enter_context(_redis(args.redis_url))
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
        if "parser" in steps:
            _step("parser", summary, bench_parser)
        if "intake" in steps:
            from bench import intake_http

            _step(
                "intake over HTTP",
                summary,
                intake_http.run,
                args.database_url,
                redis_url,
                sizes.cases,
                1000,
                2,
            )
        if "import" in steps:
            from bench import intake_import

            _step(
                "cases import",
                summary,
                intake_import.run,
                args.database_url,
                redis_url,
                sizes.rows,
                "csv",
                0.5,
            )
        if "sms" in steps:
            sms = _step(
                "sms_load end to end",
                summary,
                _harness,
                args.database_url,
                redis_url,
                tmp / "sms.json",
                citizens=sizes.citizens,
                max_wall=7200.0,  # 20,000 citizens on a small machine take most of an hour
            )
            if sms and "answers" in sms:
                answers = sms["answers"]
                summary["replies end to end /s"] = answers["answers_processed_per_s"]
                summary["MO -> next MT p50/p99 ms"] = (
                    answers["e2e_latency_ms"].get("p50"),
                    answers["e2e_latency_ms"].get("p99"),
                )
                summary["sms_load exit"] = sms["exit"]
            if sms and "openings" in sms:
                summary["openings"] = sms["openings"]
        if "acks" in steps:
            acks = _step(
                "sms_load --acks-only",
                summary,
                _harness,
                args.database_url,
                redis_url,
                tmp / "acks.json",
                citizens=sizes.citizens,
                concurrency=100,
                acks_only=True,
                messages=sizes.messages,
                max_wall=3600.0,
            )
            if acks and "acks_only" in acks:
                summary["webhook acks /s"] = acks["acks_only"]["acks_per_s"]
                summary["ack p99 ms"] = acks["acks_only"]["ack_latency_ms"].get("p99")
        if "floor" in steps:
            floor = _step("floor", summary, _floor, args.database_url, tmp / "floor.json", sizes.citizens)
            if floor and "answers" in floor:
                summary["floor answers /s"] = floor["answers"]["answers_processed_per_s"]
                summary["floor MO -> next MT p50/p99 ms"] = (
                    floor["answers"]["e2e_latency_ms"].get("p50"),
                    floor["answers"]["e2e_latency_ms"].get("p99"),
                )
        if "aiogram" in steps:
            from bench import aiogram_fsm

            peer = _step(
                "aiogram 3 FSM, RedisStorage",
                summary,
                asyncio.run,
                aiogram_fsm.run(redis_url, sizes.aiogram_citizens, 100),
            )
            if peer:
                print(json.dumps(peer), flush=True)
                summary["aiogram updates /s"] = peer["updates_per_s"]
    print(f"\n## summary (load average {load_average()})", flush=True)
    for key, value in summary.items():
        print(f"{key}: {value}", flush=True)
    ours, peer_rate = summary.get("replies end to end /s"), summary.get("aiogram updates /s")
    if ours and peer_rate:
        print(
            f"ratio: our replies end to end {ours}/s = {ours / peer_rate:.2f} x aiogram's {peer_rate} "
            "updates/s (issue 9 target: >= 2 x; replies >= 2,000/s, p99 < 500 ms)",
            flush=True,
        )
    floor_rate = summary.get("floor answers /s")
    if ours and floor_rate:
        print(
            f"floor: the least a durable service can do answered {floor_rate}/s on this machine under the "
            f"same harness; ours is {ours / floor_rate:.2f} x that",
            flush=True,
        )


if __name__ == "__main__":
    main()
