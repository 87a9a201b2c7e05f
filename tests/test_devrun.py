"""`make run` (workers/devrun.py): the environment wins over .env, the worker's dlr-urls point at
the web, ports are settings checked before start (naming what is in the way), the stand-in phone
runs only without a real gateway, and Ctrl+C stops everything in order without tracebacks."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from config.settings import PROJECT_ROOT, Settings
from tests.support.services import RedisServer, free_port, wait_for_port
from workers import devrun


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, SIPAS_ENV="development", **values)  # type: ignore[call-arg, arg-type]


def test_env_file_names_and_what_counts_as_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / ".env"
    assert devrun.write_env_file(env_file)
    assert not devrun.write_env_file(env_file)  # never overwritten
    names = devrun.env_file_names(env_file)
    assert {"SIPAS_SECRET_KEY", "ONESTOP_WEBHOOK_SECRET", "KANNEL_MO_TOKEN", "KANNEL_PASSWORD"} <= names
    assert "KANNEL_SENDSMS_URL" not in names  # no gateway written: the stand-in phone is the default
    monkeypatch.delenv("KANNEL_SENDSMS_URL", raising=False)
    assert not devrun.is_set("KANNEL_SENDSMS_URL", env_file)
    monkeypatch.setenv("KANNEL_SENDSMS_URL", "http://kannel.example:13013/cgi-bin/sendsms")
    assert devrun.is_set("KANNEL_SENDSMS_URL", env_file)


def test_the_stand_in_phone_only_without_a_real_gateway() -> None:
    default = _settings()
    assert devrun.needs_stand_in_phone(default, gateway_configured=False)
    real = _settings(KANNEL_SENDSMS_URL="http://10.0.0.5:13013/cgi-bin/sendsms")
    assert not devrun.needs_stand_in_phone(real, gateway_configured=True)
    own = _settings(SIPAS_DEV_GATEWAY_PORT=23013, KANNEL_SENDSMS_URL="http://127.0.0.1:23013/cgi-bin/sendsms")
    assert devrun.needs_stand_in_phone(own, gateway_configured=True)
    sipas = "/x/sipas"
    assert "phone:" in devrun.procfile_text(default, sipas, with_phone=True)
    assert "phone:" not in devrun.procfile_text(real, sipas, with_phone=False)
    assert f"--port {default.PORT}" in devrun.procfile_text(default, sipas, with_phone=False)


def test_with_the_brandname_provider_the_phone_is_its_simulator() -> None:
    chosen = _settings(
        SIPAS_SMS_PROVIDER="brandname", BRANDNAME_API_KEY="k" * 16, BRANDNAME_CALLBACK_SECRET="s" * 16
    )
    procfile = devrun.procfile_text(chosen, "/x/sipas", with_phone=True)
    assert "phone: " in procfile
    assert "-m bot.channels.brandname.simulator --port 13014 " in procfile
    assert f"--mo-url {chosen.public_url}/webhooks/sms/brandname/mo" in procfile
    assert "sms_sink" not in procfile


def test_a_redis_in_the_way_is_named(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        with pytest.raises(devrun.PortBusyError) as busy:
            devrun.check_port_free(server.port, "SIPAS_DEV_REDIS_PORT", "the embedded Redis", "")
    finally:
        server.stop()
    message = str(busy.value)
    assert f"port {server.port} (SIPAS_DEV_REDIS_PORT" in message
    assert "a Redis server" in message
    assert "redis-server" in message
    devrun.check_port_free(server.port, "SIPAS_DEV_REDIS_PORT", "the embedded Redis", "")  # free again


class _KannelLike(BaseHTTPRequestHandler):
    def do_HEAD(self) -> None:
        self.send_response(404)
        self.send_header("Server", "Kannel/1.4.5")
        self.end_headers()

    def version_string(self) -> str:
        return "Kannel/1.4.5"

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


def test_a_kannel_in_the_way_is_named() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _KannelLike)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        with pytest.raises(devrun.PortBusyError) as busy:
            devrun.check_port_free(port, "SIPAS_DEV_GATEWAY_PORT", "the stand-in phone", "")
    finally:
        server.shutdown()
        server.server_close()
    assert "an HTTP server (Kannel/1.4.5)" in str(busy.value)
    assert "SIPAS_DEV_GATEWAY_PORT" in str(busy.value)


# --- a real start, as `make run` does it, in a copy of the project ---------------------------------


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """The project's code in a scratch directory, so make run's .env and var/ land there."""
    root = tmp_path / "project"
    ignore = shutil.ignore_patterns(".venv", "var", ".env", "__pycache__", ".git", "*_cache", ".hypothesis")
    for name in ("bot", "config", "flows", "storage", "workers", "tests"):
        shutil.copytree(PROJECT_ROOT / name, root / name, ignore=ignore)
    return root


@pytest.fixture
def make_run(project_copy: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path, dict[str, str]]]:
    (project_copy / ".env").write_text(
        "SIPAS_SECRET_KEY=dotenv-secret-key-0123456789\n"
        "ONESTOP_WEBHOOK_SECRET=dotenv-onestop-secret-0\n"
        "KANNEL_MO_TOKEN=dotenv-mo-token-0000000\n"
        "KANNEL_USERNAME=sipas\nKANNEL_PASSWORD=dotenv-pass\nSIPAS_SEND_WINDOW=00:00-24:00\n",
        encoding="utf-8",
    )
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", str(project_copy)),
        "PYTHONPATH": str(project_copy),
        "ONESTOP_WEBHOOK_SECRET": "environment-onestop-secret",  # must win over .env
        "PORT": str(free_port()),
        "SIPAS_DEV_REDIS_PORT": str(free_port()),
        "SIPAS_DEV_GATEWAY_PORT": str(free_port()),
        "SIPAS_SWEEP_INTERVAL": "1",
    }
    log = project_copy / "make-run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "workers.devrun"],
            cwd=project_copy,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the test plays the terminal's Ctrl+C
        )
    yield proc, log, env
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture
def make_run_brandname(project_copy: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path, dict[str, str]]]:
    (project_copy / ".env").write_text(
        "SIPAS_SECRET_KEY=dotenv-secret-key-0123456789\nKANNEL_MO_TOKEN=dotenv-mo-token-0000000\n"
        "SIPAS_SEND_WINDOW=00:00-24:00\nSIPAS_SMS_PROVIDER=brandname\n",
        encoding="utf-8",
    )
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", str(project_copy)),
        "PYTHONPATH": str(project_copy),
        "ONESTOP_WEBHOOK_SECRET": "environment-onestop-secret",
        "PORT": str(free_port()),
        "SIPAS_DEV_REDIS_PORT": str(free_port()),
        "BRANDNAME_API_URL": f"http://127.0.0.1:{free_port()}/v1/sms",
        "SIPAS_SWEEP_INTERVAL": "1",
    }
    log = project_copy / "make-run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "workers.devrun"], cwd=project_copy, env=env, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    yield proc, log, env
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _signed_case(secret: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {"case_id": "HD-RUN-1", "agency_code": "HN-P-KHUONG-DINH", "procedure_code": "1.001612",
         "procedure_name": "Khai sinh", "phone": "0912345678", "closed_at": datetime.now(UTC).isoformat()}
    ).encode()  # fmt: skip
    stamp = str(int(time.time()))
    mac = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return body, {
        "X-Sipas-Timestamp": stamp,
        "X-Sipas-Signature": f"v1={mac}",
        "Content-Type": "application/json",
    }


def _delivered(database: Path) -> list[str]:
    with sqlite3.connect(database) as conn:
        return [row[0] for row in conn.execute("SELECT status FROM outbound_messages ORDER BY id")]


def test_make_run_with_the_brandname_provider(
    make_run_brandname: tuple[subprocess.Popen[bytes], Path, dict[str, str]],
) -> None:
    """SIPAS_SMS_PROVIDER=brandname: the simulator is the phone; the survey SMS is delivered by
    its callbacks and the citizen's reply comes back through its signed MO callback."""
    proc, log, env = make_run_brandname
    port = int(env["PORT"])
    wait_for_port(port, timeout=180)
    body, headers = _signed_case(env["ONESTOP_WEBHOOK_SECRET"])
    base = f"http://127.0.0.1:{port}"
    assert (
        httpx.post(f"{base}/api/v1/cases/closed", content=body, headers=headers, timeout=30).status_code
        == 202
    )
    database = log.parent / "var" / "sipas.db"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and "delivered" not in _delivered(database):
        time.sleep(0.5)
    assert "delivered" in _delivered(database), log.read_text()
    simulator = env["BRANDNAME_API_URL"].replace("/v1/sms", "/sim/mo")
    reply = httpx.post(simulator, json={"from": "84912345678", "text": "5"}, timeout=30)
    assert reply.json()["service_answered"] == 200, log.read_text()
    with sqlite3.connect(database) as conn:
        kinds = [
            row[0] for row in conn.execute("SELECT kind FROM inbound_events WHERE provider = 'brandname'")
        ]
    assert "mo" in kinds
    assert "dlr" in kinds
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=60) == 0
    assert "Traceback" not in log.read_text()


def test_make_run_end_to_end_then_ctrl_c(
    make_run: tuple[subprocess.Popen[bytes], Path, dict[str, str]],
) -> None:
    proc, log, env = make_run
    port = int(env["PORT"])
    wait_for_port(port, timeout=180)
    base = f"http://127.0.0.1:{port}"
    body, headers = _signed_case(env["ONESTOP_WEBHOOK_SECRET"])
    assert (
        httpx.post(f"{base}/api/v1/cases/closed", content=body, headers=headers, timeout=30).status_code
        == 202
    )
    database = log.parent / "var" / "sipas.db"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and "delivered" not in _delivered(database):
        time.sleep(0.5)
    # The stand-in phone called the worker's dlr-url: it named the web's port, not honcho's PORT.
    assert "delivered" in _delivered(database), log.read_text()
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl+C reaches the whole foreground group
    assert proc.wait(timeout=60) == 0
    output = log.read_text()
    assert "Traceback" not in output, output
    assert "stopping redis" in output
    assert output.index("worker.1 stopped") < output.index("stopping redis")
    # The Kannel password (from .env) appears nowhere: the SMS sender logs no request line, and
    # every URL our own logs carry is masked (tests/security/test_log_secrets.py).
    assert "dotenv-pass" not in output
    redis_port = int(env["SIPAS_DEV_REDIS_PORT"])
    assert not devrun.port_open(redis_port)
