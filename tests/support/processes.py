"""Run the service's own processes (`sipas web|worker|cron`) as real subprocesses in tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

from tests.support.services import wait_for_port

SIPAS = str(Path(sys.executable).parent / "sipas")


class ServiceProcess:
    """One `sipas <command>` subprocess, its output kept in a log file for failure reports."""

    def __init__(self, name: str, args: list[str], env: Mapping[str, str], log_dir: Path) -> None:
        self.name = name
        self.args = args
        self.env = dict(env)
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        log = self.log_path.open("ab")
        try:
            self.proc = subprocess.Popen(
                [SIPAS, *self.args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        return self

    def kill(self) -> None:
        """SIGKILL the whole process group (an RQ worker's work-horse child included): no cleanup."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        """SIGTERM, as honcho or systemd would, then SIGKILL if it does not exit."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""


def wait_ready(base_url: str, port: int, timeout: float = 30.0) -> None:
    """Until /readyz answers 200 (database and Redis reachable)."""
    wait_for_port(port, timeout)
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"{base_url}/readyz", timeout=2)
            if response.status_code == 200:
                return
            last = response.text
        except httpx.HTTPError as exc:
            last = str(exc)
        time.sleep(0.1)
    raise TimeoutError(f"web not ready after {timeout}s: {last}")


def wait_until(
    predicate: object, timeout: float = 30.0, interval: float = 0.1, what: str = "condition"
) -> None:
    """Poll `predicate()` until it is truthy; a timeout is a test failure naming `what`."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
