"""`sipas cases import` of a large file, run as an operator runs it, on PostgreSQL.

    python -m bench.intake_import --database-url postgresql://postgres@127.0.0.1:5432/postgres \
        [--rows 100000] [--format csv|jsonl] [--recent-share 0.5]

Writes a file of `--rows` cases (distinct phones; `--recent-share` of them closed an hour ago and
so surveyed, the rest closed ten days ago, the back-fill an import typically is, stored for the
scores only), creates a fresh migrated database on the server (dropped afterwards) and times the
`sipas` command end to end: reading the file, validation, the writes, the summary. Prints the
rows per second and the command's own summary; nothing is asserted.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.intake_common import AGENCY, bench_env, prepared_database

FIELDS = ("case_id", "agency_code", "procedure_code", "procedure_name", "phone", "closed_at", "due_at")


def write_cases(path: Path, rows: int, recent_share: float, fmt: str) -> None:
    """`rows` cases: the first `recent_share` of them recent (surveyed), the others back-fill."""
    now = datetime.now(UTC).replace(microsecond=0)
    recent, old = now - timedelta(hours=1), now - timedelta(days=10)
    cutoff = int(rows * recent_share)
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out) if fmt == "csv" else None
        if writer is not None:
            writer.writerow(FIELDS)
        for n in range(rows):
            closed = recent if n < cutoff else old
            values = (f"BENCH-IMP-{n:07d}", AGENCY, "1.001612", "Đăng ký khai sinh", f"09{n:08d}",
                      closed.isoformat(), (closed + timedelta(days=1)).isoformat())  # fmt: skip
            if writer is not None:
                writer.writerow(values)
            else:
                out.write(json.dumps(dict(zip(FIELDS, values, strict=True)), ensure_ascii=False) + "\n")


def run(server_url: str, redis_url: str, rows: int, fmt: str, recent_share: float) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp, prepared_database(server_url) as db_url:
        path = Path(tmp) / f"cases.{fmt}"
        write_cases(path, rows, recent_share, fmt)
        sipas = str(Path(sys.executable).with_name("sipas"))
        env = {**os.environ, **bench_env(db_url, redis_url)}
        cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(
            [sipas, "cases", "import", str(path)], env=env, capture_output=True, text=True, check=False
        )
        elapsed = time.perf_counter() - start
        cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-500:]
    return [
        f"cases import, {rows:,} rows ({fmt}, {recent_share:.0%} recent): {elapsed:.1f} s, "
        f"{rows / elapsed:,.0f} rows/s, exit {done.returncode}; the sipas process used {cpu:.1f} CPU s "
        f"({cpu / rows * 1e6:.0f} µs a row, start-up included; PostgreSQL's own CPU not counted)",
        f"  {summary}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", required=True, help="a PostgreSQL server URL")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    parser.add_argument("--recent-share", type=float, default=0.5)
    args = parser.parse_args()
    print(f"# cases import, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC", flush=True)
    for line in run(args.database_url, args.redis_url, args.rows, args.format, args.recent_share):
        print(line, flush=True)


if __name__ == "__main__":
    main()
