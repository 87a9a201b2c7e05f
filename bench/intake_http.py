"""Intake in signed batches over HTTP, against `sipas web` started as the Procfile starts it.

    python -m bench.intake_http --database-url postgresql://postgres@127.0.0.1:5432/postgres \
        [--redis-url URL] [--cases 20000] [--batch 1000] [--concurrency 2]

A fresh database is created on the server (dropped afterwards), migrated, given one agency; then
`sipas web` runs as its own process (the deployed path: its event loop, its pool, its JSON), and
batches of signed cases (each with a distinct phone, closed five minutes ago, so every case is
`scheduled`: case, survey and first-message timer written) are posted `--concurrency` at a time.
While they are in flight a probe asks `/healthz` every 20 ms: its latency shows whether intake
stalls the other requests of the web process. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bench.intake_common import bench_env, percentile, prepared_database
from bot.intake import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from tests.support.services import free_port, local_redis

HOOK_SECRET = "bench-onestop-secret-0123456789abcdef"


@contextmanager
def web_process(env: dict[str, str], port: int) -> Iterator[tuple[str, int]]:
    """`sipas web` on `port` until the block ends; yields its base URL and pid once /healthz answers."""
    sipas = str(Path(sys.executable).with_name("sipas"))
    process = subprocess.Popen([sipas, "web", "--port", str(port)], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120  # a loaded machine starts slowly
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("sipas web did not start")
            time.sleep(0.1)
        yield base, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


def _case(n: int, closed: datetime) -> dict[str, object]:
    return {
        "case_id": f"BENCH-HTTP-{n:07d}",
        "agency_code": "B-1",
        "procedure_code": "1.001612",
        "procedure_name": "Đăng ký khai sinh",
        "phone": f"09{n:08d}",
        "closed_at": closed.isoformat(timespec="seconds"),
        "received_at": (closed - timedelta(days=3)).isoformat(timespec="seconds"),
        "due_at": (closed + timedelta(days=2)).isoformat(timespec="seconds"),
        "channel": "sms",
        "language": "vi",
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drive(base: str, pid: int, cases: int, batch: int, concurrency: int) -> list[str]:
    """Post every batch, `concurrency` in flight, and probe /healthz meanwhile."""
    closed = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    bodies = [
        json.dumps(
            {"cases": [_case(n, closed) for n in range(lo, min(lo + batch, cases))]},
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        for lo in range(0, cases, batch)
    ]
    outcomes: Counter[str] = Counter()
    latencies: list[float] = []
    probes: list[float] = []
    pending = iter(bodies)
    done = asyncio.Event()
    async with httpx.AsyncClient(base_url=base, timeout=600) as client:

        async def poster() -> None:
            for body in pending:
                stamp = str(int(time.time()))
                headers = {
                    "Content-Type": "application/json",
                    TIMESTAMP_HEADER: stamp,
                    SIGNATURE_HEADER: sign(HOOK_SECRET, stamp, body),
                }
                start = time.perf_counter()
                response = await client.post("/api/v1/cases/closed", content=body, headers=headers)
                latencies.append(time.perf_counter() - start)
                if response.status_code != 202:
                    outcomes[f"http {response.status_code}"] += 1
                    continue
                outcomes.update(result["outcome"] for result in response.json()["results"])

        async def probe() -> None:
            while not done.is_set():
                start = time.perf_counter()
                await client.get("/healthz")
                probes.append(time.perf_counter() - start)
                await asyncio.sleep(0.02)

        prober = asyncio.create_task(probe())
        cpu_before = cpu_seconds(pid)
        start = time.perf_counter()
        await asyncio.gather(*(poster() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
        cpu = cpu_seconds(pid) - cpu_before
        done.set()
        await prober
    summary = ", ".join(f"{n} {kind}" for kind, n in sorted(outcomes.items()))
    return [
        f"intake over HTTP, batches of {batch}, {concurrency} in flight: {cases} cases in "
        f"{elapsed:.2f} s, {cases / elapsed:,.0f} cases/s; request p50 "
        f"{percentile(latencies, 50) * 1000:.0f} ms, p95 {percentile(latencies, 95) * 1000:.0f} ms "
        f"({summary}); the web process used {cpu:.1f} CPU s ({cpu / cases * 1e6:.0f} µs a case)",
        f"  /healthz meanwhile: {len(probes)} probes, p50 {percentile(probes, 50) * 1000:.1f} ms, "
        f"p99 {percentile(probes, 99) * 1000:.1f} ms, max {max(probes) * 1000:.1f} ms",
    ]


def run(server_url: str, redis_url: str | None, cases: int, batch: int, concurrency: int) -> list[str]:
    with ExitStack() as stack:
        db_url = stack.enter_context(prepared_database(server_url))
        redis = redis_url or stack.enter_context(
            local_redis(Path(stack.enter_context(tempfile.TemporaryDirectory())))
        )
        port = free_port()
        env = {
            **os.environ,
            **bench_env(db_url, redis),
            "ONESTOP_WEBHOOK_SECRET": HOOK_SECRET,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "SIPAS_PUBLIC_URL": f"http://127.0.0.1:{port}",
        }
        base, pid = stack.enter_context(web_process(env, port))
        return asyncio.run(drive(base, pid, cases, batch, concurrency))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", required=True, help="a PostgreSQL server URL")
    parser.add_argument("--redis-url")
    parser.add_argument("--cases", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    print(f"# intake over HTTP, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC", flush=True)
    for line in run(args.database_url, args.redis_url, args.cases, args.batch, args.concurrency):
        print(line, flush=True)


if __name__ == "__main__":
    main()
