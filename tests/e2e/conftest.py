"""The whole service as it runs in production: `sipas web`, `sipas worker` and `sipas cron` as
real processes, a real Kannel with fakesmsc as the citizens' phones, PostgreSQL (in CI) and a
Redis server of our own so that a test can restart it."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from config.settings import PROJECT_ROOT
from tests.conftest import ONESTOP_SECRET, SECRET_KEY
from tests.support.kannel import KannelHarness, ensure_kannel
from tests.support.processes import SIPAS, ServiceProcess, wait_ready
from tests.support.services import RedisServer, free_port, require_or_skip

# The pre-2025 sample (a district and its wards): these tests roll up over three levels.
AGENCIES = PROJECT_ROOT / "tests" / "fixtures" / "agencies" / "ha-noi-thanh-xuan-2023.yaml"


@dataclass
class Service:
    """Handles on every moving part of one end-to-end run."""

    env: dict[str, str]
    base_url: str
    port: int
    kannel: KannelHarness
    workdir: Path
    web: ServiceProcess
    worker: ServiceProcess
    cron: ServiceProcess
    redis: RedisServer
    extra: list[ServiceProcess] = field(default_factory=list)

    def sipas(self, *args: str) -> str:
        """Run a one-off `sipas` command like an operator would; its stdout."""
        done = subprocess.run(
            [SIPAS, *args], env=self.env, cwd=self.workdir, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, f"sipas {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def post_cases(self, body: Any) -> httpx.Response:
        raw = json.dumps(body, ensure_ascii=False).encode()
        stamp = str(int(time.time()))
        mac = hmac.new(ONESTOP_SECRET.encode(), stamp.encode() + b"." + raw, hashlib.sha256).hexdigest()
        return httpx.post(
            f"{self.base_url}/api/v1/cases/closed",
            content=raw,
            headers={"Content-Type": "application/json", "X-Sipas-Timestamp": stamp,
                     "X-Sipas-Signature": f"v1={mac}"},
            timeout=30,
        )  # fmt: skip

    def logs(self) -> str:
        parts = [f"--- {p.name} ---\n{p.output()[-4000:]}" for p in (self.web, self.worker, self.cron)]
        return "\n".join([*parts, f"--- kannel ---\n{self.kannel.logs()[-3000:]}"])


@pytest.fixture
def service_env() -> dict[str, str]:
    """Extra environment for the service's processes; a test module overrides it (e.g. Zalo)."""
    return {}


@pytest.fixture
def service(db_url: str, tmp_path: Path, service_env: dict[str, str]) -> Iterator[Service]:
    binaries = ensure_kannel()
    require_or_skip(binaries is not None, "Kannel is not installed and cannot be installed here")
    assert binaries is not None
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    with (
        contextlib.closing(_Stopper(redis)),
        KannelHarness(binaries, tmp_path / "kannel", webhook_base=base_url) as kannel,
    ):
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", str(tmp_path)),
            "DATABASE_URL": db_url,
            "REDIS_URL": redis.url,
            "SIPAS_SECRET_KEY": SECRET_KEY,
            "ONESTOP_WEBHOOK_SECRET": ONESTOP_SECRET,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "SIPAS_SEND_WINDOW": "00:00-24:00",
            "SIPAS_SWEEP_INTERVAL": "1",
            "SIPAS_RECOVERY_GRACE": "3",
            "SIPAS_SEND_LEASE": "10",
            "SIPAS_SEND_TIMEOUT": "5",
            "SIPAS_MIN_RESPONSES": "1",
            "LOG_LEVEL": "INFO",
            **kannel.settings_overrides(),
            **service_env,
        }
        workdir = tmp_path / "cwd"  # no .env there: the environment above is the whole configuration
        workdir.mkdir()
        logs = tmp_path / "logs"
        logs.mkdir()
        svc = Service(
            env=env,
            base_url=base_url,
            port=port,
            kannel=kannel,
            workdir=workdir,
            web=ServiceProcess("web", ["web"], env, logs),
            worker=ServiceProcess("worker", ["worker"], env, logs),
            cron=ServiceProcess("cron", ["cron"], env, logs),
            redis=redis,
        )
        svc.sipas("agencies", "import", str(AGENCIES))
        svc.web.start()
        try:
            wait_ready(base_url, port)
            svc.worker.start()
            svc.cron.start()
            yield svc
        except BaseException:
            print(svc.logs())
            raise
        finally:
            for proc in (svc.cron, svc.worker, svc.web, *svc.extra):
                proc.stop()


class _Stopper:
    def __init__(self, redis: RedisServer) -> None:
        self.redis = redis

    def close(self) -> None:
        self.redis.stop()
