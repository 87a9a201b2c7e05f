"""The sms_load harness end to end against the service's own processes, as the Procfile runs them.

    python -m bench.sms_load [--quick] [--citizens N] [--workers N] [--webs N] [--acks-only]

Starts, on a fresh PostgreSQL database and a flushed Redis database: the harness's fake Kannel
(`fake_gateway.py`), `sipas web` (one or more), `sipas worker` (one or more) and `sipas cron`,
imports the harness's agencies, runs `load.py` (README in the harness directory) with every
process watched for CPU and memory, prints its report, and stops everything in order. `--src`
runs another checkout of the project (e.g. an older commit exported with `git archive`), which
is how the "before" figures in docs/benchmarks.md were taken on the same machine and day.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path

from config.settings import PROJECT_ROOT
from tests.support.processes import wait_ready
from tests.support.services import free_port, postgres_database, wait_for_port

HARNESS = Path(os.environ.get("SIPAS_SMS_LOAD_DIR", PROJECT_ROOT.parent / "shared/bench/sms_load"))
MO_TOKEN = "bench-mo-token"
ONESTOP_SECRET = "bench-onestop-secret"
KANNEL_USER, KANNEL_PASSWORD = "bench", "bench-pass"


class Proc:
    """One child process with its output in a log file; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], cwd: Path, logs: Path) -> None:
        self.name = name
        self.log = logs / f"{name}.log"
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)


def _sipas(src: Path, *args: str) -> list[str]:
    """`sipas ARGS` from the checkout `src` (its modules first on sys.path)."""
    return [sys.executable, "-c", "from workers.cli import main; main()", *args]


@contextmanager
def service(
    src: Path, database_server: str, redis_url: str, webs: int, workers: int, logs: Path
) -> Iterator[dict[str, object]]:
    """The gateway, web(s), worker(s) and cron on a fresh database; yields ports and pids."""
    with ExitStack() as stack:
        db_url = stack.enter_context(postgres_database(database_server))
        gateway_port = free_port()
        web_ports = [free_port() for _ in range(webs)]
        env = {
            **os.environ,
            "PYTHONPATH": str(src),
            "DATABASE_URL": db_url,
            "REDIS_URL": redis_url,
            "SIPAS_SECRET_KEY": "bench-secret-key-0123456789abcdef",
            "ONESTOP_WEBHOOK_SECRET": ONESTOP_SECRET,
            "KANNEL_SENDSMS_URL": f"http://127.0.0.1:{gateway_port}/cgi-bin/sendsms",
            "KANNEL_USERNAME": KANNEL_USER,
            "KANNEL_PASSWORD": KANNEL_PASSWORD,
            "KANNEL_MO_TOKEN": MO_TOKEN,
            "SIPAS_ENV": "development",  # the harness's token is 14 characters (production wants 16)
            "SMS_SENDER": "8100",
            "SIPAS_SEND_WINDOW": "00:00-24:00",
            "SIPAS_FIRST_MESSAGE_DELAY": "0",
            "SIPAS_FREQUENCY_CAP_DAYS": "0",
            # The shipped 200 SMS/s is an operator's agreement with their SMSC, not a property of
            # the service; against the instant fake gateway it capped every run at 196-199
            # answers/s (docs/benchmarks.md, 2026-11-30 night). Set it in the environment to
            # measure the throttle itself.
            "SIPAS_SMS_RATE": os.environ.get("SIPAS_SMS_RATE", "100000"),
            "SIPAS_PUBLIC_URL": f"http://127.0.0.1:{web_ports[0]}",
            "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
        }
        from redis import Redis

        Redis.from_url(redis_url).flushdb()
        subprocess.run(_sipas(src, "db", "upgrade"), env=env, cwd=src, check=True, capture_output=True)
        subprocess.run(
            _sipas(src, "agencies", "import", str(HARNESS / "bench_agencies.csv")),
            env=env,
            cwd=src,
            check=True,
            capture_output=True,
        )
        procs: list[Proc] = []

        def stop_all() -> None:
            for proc in reversed(procs):
                proc.stop()

        stack.callback(stop_all)
        gateway_argv = [sys.executable, str(HARNESS / "fake_gateway.py"), "--port", str(gateway_port)]
        procs.append(Proc("gateway", [*gateway_argv, "--dlr"], env, src, logs))
        wait_for_port(gateway_port)
        for n, port in enumerate(web_ports):
            web_env = {**env, "PORT": str(port), "HOST": "127.0.0.1"}
            procs.append(Proc(f"web{n}", _sipas(src, "web"), web_env, src, logs))
        for n in range(workers):
            procs.append(Proc(f"worker{n}", _sipas(src, "worker"), env, src, logs))
        procs.append(Proc("cron", _sipas(src, "cron"), env, src, logs))
        for port in web_ports:
            wait_ready(f"http://127.0.0.1:{port}", port, timeout=60)
        yield {
            "base": f"http://127.0.0.1:{web_ports[0]}",
            "gateway": f"http://127.0.0.1:{gateway_port}",
            "pids": {p.name: p.popen.pid for p in procs if p.name != "gateway"},
        }


def add_database_argument(parser: argparse.ArgumentParser) -> None:
    """--database-url: the PostgreSQL server a run makes its fresh database on (also bench.floor)."""
    parser.add_argument(
        "--database-url",
        default=os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="a PostgreSQL server URL (a fresh database is created and dropped)",
    )


def add_service_arguments(parser: argparse.ArgumentParser) -> None:
    """--database-url and --redis-url: where `service` starts the processes (also bench.soak)."""
    add_database_argument(parser)
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/2"),
        help="a Redis database the run may flush",
    )


def headline(kind: str, src: Path, what: str) -> str:
    """The first line of a run's report: when, on what machine, which commit, under what load."""
    commit = subprocess.run(
        ["git", "-C", str(src), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"# {kind} {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()} {platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, src {src} {commit or '(no git)'}, "
        f"{what}, load average {load}"
    )


def run(
    *,
    src: Path = PROJECT_ROOT,
    database_url: str,
    redis_url: str,
    citizens: int,
    concurrency: int = 200,
    webs: int = 1,
    workers: int = 1,
    acks_only: bool = False,
    messages: int = 20000,
    max_wall: float = 900.0,
    out: Path | None = None,
    harness_args: Sequence[str] = (),
) -> int:
    """One harness run against freshly started processes; prints its report, returns its exit
    code (0: every check passed). `python -m bench` calls this too."""
    src = src.resolve()
    print(headline("sms_load", src, f"{webs} web, {workers} worker, 1 cron"), flush=True)
    with tempfile.TemporaryDirectory(prefix="sms-load-") as tmp:
        logs = Path(tmp)
        with service(src, database_url, redis_url, webs, workers, logs) as svc:
            pids: dict[str, int] = svc["pids"]  # type: ignore[assignment]
            argv = [
                sys.executable,
                str(HARNESS / "load.py"),
                "--base", str(svc["base"]),
                "--token", MO_TOKEN,
                "--secret", ONESTOP_SECRET,
                "--gateway", str(svc["gateway"]),
                "--agency", "BENCH.X1",
                "--shortcode", "8100",
                "--concurrency", str(concurrency),
                "--max-wall", str(max_wall),
            ]  # fmt: skip
            if acks_only:
                argv += ["--acks-only", "--messages", str(messages)]
            else:
                argv += ["--citizens", str(citizens)]
            if out is not None:
                argv += ["--out", str(out)]
            argv += list(harness_args)
            for name, pid in pids.items():
                argv += ["--watch", f"{name}={pid}" + ("+" if name.startswith("worker") else "")]
            started = time.monotonic()
            result = subprocess.run(argv, check=False)
            print(
                f"# harness exit {result.returncode} after {time.monotonic() - started:.0f} s, load average "
                f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}",
                flush=True,
            )
        if result.returncode != 0:
            for log in sorted(logs.glob("*.log")):
                tail = log.read_text(errors="replace").splitlines()[-15:]
                print(f"--- {log.name} (last lines)\n" + "\n".join(tail), file=sys.stderr)
    return result.returncode


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--src", type=Path, default=PROJECT_ROOT, help="checkout to run")
    add_service_arguments(parser)
    parser.add_argument("--quick", action="store_true", help="200 citizens: a smoke run in about a minute")
    parser.add_argument("--citizens", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--webs", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--acks-only", action="store_true", help="raw webhook acknowledgement capacity")
    parser.add_argument("--messages", type=int, default=20000, help="webhook calls with --acks-only")
    parser.add_argument("--max-wall", type=float, default=900.0, help="give up after this many seconds")
    parser.add_argument("--out", type=Path, help="the harness's JSON results")
    parser.add_argument("harness_args", nargs="*", help="more load.py options, after --")
    args = parser.parse_args()
    code = run(
        src=args.src,
        database_url=args.database_url,
        redis_url=args.redis_url,
        citizens=200 if args.quick else args.citizens,
        concurrency=args.concurrency,
        webs=args.webs,
        workers=args.workers,
        acks_only=args.acks_only,
        messages=args.messages,
        max_wall=args.max_wall,
        out=args.out,
        harness_args=args.harness_args,
    )
    sys.exit(code)


if __name__ == "__main__":
    main()
