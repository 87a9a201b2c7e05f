"""A real Kannel 1.4.5 for tests: bearerbox + smsbox + a fake SMSC, with `fakesmsc` as the phone.

    binaries = ensure_kannel()
    require_or_skip(binaries is not None, "...")
    with KannelHarness(binaries, tmp_path, webhook_base="http://127.0.0.1:8123") as kannel:
        settings = settings.model_copy(update=kannel.settings_overrides())
        ...                                   # send through kannel.sendsms_url
        mt = kannel.phone.wait_for_mt(to="+84912345678")
        kannel.phone.send_mo("84912345678", "Rất hài lòng")   # Kannel calls our webhook

Layout: bearerbox has two `fake` SMSC connections. "phone" carries MT to `fakesmsc`, which
prints every message it receives; we read those lines (FakePhone). "inject" is used only to
inject MO: we write fakesmsc's line format to its socket ourselves, because fakesmsc's stdin mode
splits lines over 255 bytes and can crash. `allowed-smsc-id = inject` keeps MT off it.

Kannel 1.4.5 facts this relies on (checked against the binaries):
- fakesmsc logs each MT to stderr as `Got message N: <from to type data>` where type is
  `text` (raw text: an embedded newline continues on the next log line), `ucs-2` (URL-encoded
  UTF-16BE) or, for a concatenated part, `udh <url-encoded UDH> data <url-encoded bytes>`.
- Stopping bearerbox also stops smsbox and fakesmsc, so a restart restarts all three; the
  smsbox's pending HTTP retries are lost with it, queued MT survive in the store file.
- `http-request-retry` (a count) and `http-queue-delay` (seconds) are smsbox options; a
  callback answered with anything but 200/202, or not answered, is retried with the same URL.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from urllib.parse import quote_from_bytes, unquote_to_bytes

import httpx

from tests.support.services import free_port, wait_for_port

__all__ = ["FakePhone", "KannelBinaries", "KannelHarness", "MtMessage", "ensure_kannel", "find_kannel"]

KANNEL_PACKAGES = ("kannel", "kannel-extras")
_BEARERBOX = Path("/usr/sbin/bearerbox")
_SMSBOX = Path("/usr/sbin/smsbox")
_FAKESMSC = Path("/usr/lib/kannel/test/fakesmsc")

_GOT = re.compile(r"Got message \d+: <(.*)>\s*$")
_MT = re.compile(r"^(\S+) (\S+) (text|ucs-2|ucs2|data|udh) ?(.*)$", re.DOTALL)
_UDH = re.compile(r"^(\S+) data (.*)$", re.DOTALL)


@dataclass(frozen=True)
class KannelBinaries:
    bearerbox: Path
    smsbox: Path
    fakesmsc: Path


def find_kannel() -> KannelBinaries | None:
    """The Debian package's binaries (kannel + kannel-extras), or None."""
    paths = (
        Path(shutil.which("bearerbox") or _BEARERBOX),
        Path(shutil.which("smsbox") or _SMSBOX),
        _FAKESMSC,
    )
    if all(path.is_file() and os.access(path, os.X_OK) for path in paths):
        return KannelBinaries(*paths)
    return None


@lru_cache(maxsize=1)
def ensure_kannel() -> KannelBinaries | None:
    """Kannel, installed from Debian with apt-get when missing and we are root; None otherwise."""
    found = find_kannel()
    if found is not None or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *KANNEL_PACKAGES]

    def run(cmd: list[str]) -> int:
        return subprocess.run(
            cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
        ).returncode

    if run(install) != 0:
        run(["apt-get", "update", "-q"])
        run(install)
    return find_kannel()


@dataclass(frozen=True)
class MtMessage:
    """One message as the phone received it (concatenated parts joined)."""

    sender: str
    receiver: str
    text: str
    coding: str  # "gsm7" or "ucs2"
    parts: int = 1


@dataclass
class _Parts:
    sender: str
    receiver: str
    total: int
    data: dict[int, bytes] = field(default_factory=dict)


class FakePhone:
    """Reads what fakesmsc prints (MT) and writes MO into the injection SMSC connection."""

    def __init__(self) -> None:
        self._messages: list[MtMessage] = []
        self._changed = threading.Condition()
        self._parts: dict[tuple[str, str, int], _Parts] = {}
        self._inject_port: int | None = None
        self._inject: socket.socket | None = None
        self._lock = threading.Lock()
        self.log: list[str] = []  # every line fakesmsc printed, for failure reports

    # --- MT -------------------------------------------------------------------------------

    def wait_for_mt(self, to: str | None = None, timeout: float = 20.0) -> MtMessage:
        """The oldest MT not yet taken (to `to`, E.164 or digits, when given); it is taken."""
        wanted = _digits(to) if to else None
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for index, message in enumerate(self._messages):
                    if wanted is None or _digits(message.receiver) == wanted:
                        return self._messages.pop(index)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"no MT to {to or 'anyone'} within {timeout}s; fakesmsc printed:\n"
                        + "\n".join(self.log[-20:])
                    )
                self._changed.wait(remaining)

    def pending_mt(self) -> list[MtMessage]:
        """MT received and not yet taken by wait_for_mt."""
        with self._changed:
            return list(self._messages)

    def clear(self) -> None:
        with self._changed:
            self._messages.clear()
            self._parts.clear()

    def _publish(self, message: MtMessage) -> None:
        with self._changed:
            self._messages.append(message)
            self._changed.notify_all()

    def _read_fakesmsc(self, fd: int) -> None:
        """Reader thread: fakesmsc's stderr until EOF. A `text` MT with an embedded newline
        arrives as several log lines; lines that are not a new message continue the last one,
        which is published once fakesmsc has been quiet for a moment or another message starts."""
        buffer = b""
        pending: MtMessage | None = None
        pending_is_text = False  # only a raw `text` line can continue on the next log line
        while True:
            ready, _, _ = select.select([fd], [], [], 0.3 if pending else None)
            if not ready:
                assert pending is not None
                self._publish(pending)
                pending = None
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for raw in lines:
                line = raw.decode("utf-8", errors="replace")
                self.log.append(line)
                got = _GOT.search(line)
                if got is None:
                    continue
                content = got.group(1)
                match = _MT.match(content)
                if match is None:
                    if pending is not None and pending_is_text:
                        pending = MtMessage(
                            pending.sender, pending.receiver, pending.text + "\n" + content, "gsm7"
                        )
                    continue
                if pending is not None:
                    self._publish(pending)
                pending = self._parse_mt(*match.groups())
                pending_is_text = match.group(3) == "text"
        if pending is not None:
            self._publish(pending)

    def _parse_mt(self, sender: str, receiver: str, kind: str, data: str) -> MtMessage | None:
        if kind == "text":
            return MtMessage(sender, receiver, data, "gsm7")
        if kind in ("ucs-2", "ucs2"):
            return MtMessage(sender, receiver, _url_bytes(data).decode("utf-16-be"), "ucs2")
        if kind == "data":
            return MtMessage(sender, receiver, *_decode_payload(_url_bytes(data)))
        udh_match = _UDH.match(data)
        if udh_match is None:
            return None
        udh, payload = _url_bytes(udh_match.group(1)), _url_bytes(udh_match.group(2))
        ref, total, seq = _concatenation(udh)
        if total <= 1:
            return MtMessage(sender, receiver, *_decode_payload(payload))
        key = (sender, receiver, ref)
        parts = self._parts.setdefault(key, _Parts(sender, receiver, total))
        parts.data[seq] = payload
        if len(parts.data) < parts.total:
            return None
        del self._parts[key]
        text, coding = _decode_payload(b"".join(parts.data[i] for i in sorted(parts.data)))
        return MtMessage(sender, receiver, text, coding, parts=parts.total)

    # --- MO -------------------------------------------------------------------------------

    def send_mo(self, sender: str, text: str, receiver: str = "8040") -> None:
        """Inject a citizen's SMS as the operator would deliver it: plain ASCII as a GSM-7
        `text` line, anything else (accents, newlines) as URL-encoded UCS-2."""
        if not re.fullmatch(r"\+?[0-9A-Za-z]+", sender) or not re.fullmatch(r"[0-9A-Za-z]+", receiver):
            raise ValueError("sender and receiver must be single words of digits or letters")
        if text.isascii() and text.isprintable() and text:
            line = f"{sender} {receiver} text {text}\n"
        else:
            line = f"{sender} {receiver} ucs2 {quote_from_bytes(text.encode('utf-16-be'), safe='')}\n"
        with self._lock:
            for attempt in (1, 2):
                try:
                    if self._inject is None:
                        self._inject = self._connect_inject()
                    self._inject.sendall(line.encode("utf-8"))
                    return
                except OSError:
                    self._close_inject()
                    if attempt == 2:
                        raise

    def _connect_inject(self) -> socket.socket:
        if self._inject_port is None:
            raise RuntimeError("Kannel is not running")
        return socket.create_connection(("127.0.0.1", self._inject_port), timeout=5)

    def _close_inject(self) -> None:
        if self._inject is not None:
            with contextlib.suppress(OSError):
                self._inject.close()
            self._inject = None

    def _attach(self, inject_port: int) -> None:
        with self._lock:
            self._inject_port = inject_port
            self._inject = self._connect_inject()

    def _detach(self) -> None:
        with self._lock:
            self._close_inject()
            self._inject_port = None


class KannelHarness:
    """Kannel configured for sipas-bot (sendsms user, sms-service to our webhook, DLR on) in a
    temporary directory, on free ports. Start/stop as a context manager or with start()/stop();
    stop() then start() is a full gateway restart (queued MT survive in the store file)."""

    def __init__(
        self,
        binaries: KannelBinaries,
        workdir: Path,
        *,
        webhook_base: str,
        mo_token: str = "kannel-mo-token-0123",
        username: str = "sipas",
        password: str = "sendsms-secret",
        sender: str = "8040",
        http_retries: int = 100,
        http_retry_delay: int = 1,
    ) -> None:
        for name, value in (("mo_token", mo_token), ("webhook_base", webhook_base)):
            if "%" in value or not value.isascii():
                raise ValueError(f"{name} must be plain ASCII without %: Kannel expands % escapes")
        self.binaries = binaries
        self.workdir = workdir
        self.webhook_base = webhook_base.rstrip("/")
        self.mo_token = mo_token
        self.username = username
        self.password = password
        self.sender = sender
        self.http_retries = http_retries
        self.http_retry_delay = http_retry_delay
        self.admin_password = "kannel-admin"
        self.admin_port, self.smsbox_port, self.sendsms_port, self.phone_port, self.inject_port = (
            free_port() for _ in range(5)
        )
        self.config_path = workdir / "kannel.conf"
        self.phone = FakePhone()
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._reader: threading.Thread | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config(), encoding="utf-8")

    # --- what the service under test needs -----------------------------------------------

    @property
    def sendsms_url(self) -> str:
        return f"http://127.0.0.1:{self.sendsms_port}/cgi-bin/sendsms"

    @property
    def mo_url(self) -> str:
        """The sms-service get-url (Kannel escapes unexpanded), as contract.md has it."""
        return (
            f"{self.webhook_base}/webhooks/sms/kannel?token={self.mo_token}&from=%p&to=%P&text=%b&id=%I&ts=%t"
        )

    def settings_overrides(self) -> dict[str, str]:
        """Settings fields pointing the service at this Kannel (SIPAS_PUBLIC_URL: the webhook base)."""
        return {
            "KANNEL_SENDSMS_URL": self.sendsms_url,
            "KANNEL_USERNAME": self.username,
            "KANNEL_PASSWORD": self.password,
            "KANNEL_MO_TOKEN": self.mo_token,
            "SMS_SENDER": self.sender,
            "SIPAS_PUBLIC_URL": self.webhook_base,
        }

    def config(self) -> str:
        d = self.workdir
        return f"""\
# Generated by tests/support/kannel.py (Kannel 1.4.5). See docs/kannel.md for production.
group = core
admin-port = {self.admin_port}
admin-password = "{self.admin_password}"
status-password = "{self.admin_password}"
admin-allow-ip = "127.0.0.1"
smsbox-port = {self.smsbox_port}
box-deny-ip = "*.*.*.*"
box-allow-ip = "127.0.0.1"
log-file = "{d / "bearerbox.log"}"
log-level = 0
access-log = "{d / "access.log"}"
dlr-storage = internal
store-type = file
store-location = "{d / "kannel.store"}"

# The citizen's phone: fakesmsc connects here and prints every MT.
group = smsc
smsc = fake
smsc-id = phone
port = {self.phone_port}
connect-allow-ip = "127.0.0.1"

# MO injection only (the tests write fakesmsc's line format here); never used for MT.
group = smsc
smsc = fake
smsc-id = inject
allowed-smsc-id = inject
port = {self.inject_port}
connect-allow-ip = "127.0.0.1"

group = smsbox
bearerbox-host = "127.0.0.1"
bearerbox-port = {self.smsbox_port}
sendsms-port = {self.sendsms_port}
sendsms-interface = "127.0.0.1"
log-file = "{d / "smsbox.log"}"
log-level = 0
access-log = "{d / "smsbox-access.log"}"
mo-recode = true
http-request-retry = {self.http_retries}
http-queue-delay = {self.http_retry_delay}

group = sendsms-user
username = "{self.username}"
password = "{self.password}"
max-messages = 10
concatenation = true

group = sms-service
keyword = default
catch-all = true
get-url = "{self.mo_url}"
max-messages = 0
omit-empty = true
"""

    # --- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> KannelHarness:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return bool(self._procs) and all(proc.poll() is None for proc in self._procs.values())

    def start(self, timeout: float = 30.0) -> None:
        """bearerbox, smsbox, then fakesmsc; returns once both SMSC connections are online."""
        if self._procs:
            raise RuntimeError("Kannel is already running")
        try:
            self._spawn("bearerbox", [str(self.binaries.bearerbox), "-v", "1", str(self.config_path)])
            wait_for_port(self.admin_port, timeout)
            self._spawn("smsbox", [str(self.binaries.smsbox), "-v", "1", str(self.config_path)])
            wait_for_port(self.sendsms_port, timeout)
            fakesmsc = self._spawn(
                "fakesmsc",
                # -m 0: send nothing, only print what arrives; the message argument is required.
                [
                    str(self.binaries.fakesmsc),
                    "-H",
                    "127.0.0.1",
                    "-r",
                    str(self.phone_port),
                    "-m",
                    "0",
                    "0 0 text -",
                ],
                stderr=subprocess.PIPE,
            )
            assert fakesmsc.stderr is not None
            self._reader = threading.Thread(
                target=self.phone._read_fakesmsc, args=(fakesmsc.stderr.fileno(),), daemon=True
            )
            self._reader.start()
            self.phone._attach(self.inject_port)
            self._wait_until(
                self._connections_online, timeout, "both fake SMSC connections and smsbox online"
            )
        except BaseException:
            self.stop()
            raise

    def stop(self, graceful: bool = True) -> None:
        """Stop all three (SIGTERM, or SIGKILL when not graceful, as in a crash)."""
        self.phone._detach()
        fakesmsc = self._procs.pop("fakesmsc", None)
        if fakesmsc is not None:
            _terminate(fakesmsc, graceful)
        if self._reader is not None:
            self._reader.join(timeout=10)  # it reads to EOF, then the pipe can be closed
            self._reader = None
        if fakesmsc is not None and fakesmsc.stderr is not None:
            fakesmsc.stderr.close()
        for name in ("smsbox", "bearerbox"):
            proc = self._procs.pop(name, None)
            if proc is not None:
                _terminate(proc, graceful)

    def restart(self) -> None:
        self.stop()
        self.start()

    # --- observation ----------------------------------------------------------------------

    def status(self) -> str:
        """bearerbox's /status.txt."""
        response = httpx.get(
            f"http://127.0.0.1:{self.admin_port}/status.txt",
            params={"password": self.admin_password},
            timeout=5,
        )
        return response.text

    def http_retries_logged(self) -> int:
        """How many times smsbox has retried a failed callback so far (from its debug log)."""
        log_path = self.workdir / "smsbox.log"
        if not log_path.exists():
            return 0
        return log_path.read_text(encoding="utf-8", errors="replace").count("HTTP: Retrying request")

    def logs(self) -> str:
        """The tail of every log, for assertion messages."""
        parts = []
        for name in ("bearerbox.log", "smsbox.log", "bearerbox.out", "smsbox.out"):
            path = self.workdir / name
            if path.exists():
                lines = path.read_text(encoding="utf-8", errors="replace").splitlines()[-30:]
                parts.append(f"== {name}\n" + "\n".join(lines))
        parts.append("== fakesmsc\n" + "\n".join(self.phone.log[-30:]))
        return "\n".join(parts)

    def _connections_online(self) -> bool:
        try:
            status = self.status()
        except httpx.HTTPError:
            return False
        return (
            re.search(r"smsbox:\S*, IP 127\.0\.0\.1", status) is not None
            and re.search(r"phone\[phone\]\s+FAKE:\d+ \(online", status) is not None
            and re.search(r"inject\[inject\]\s+FAKE:\d+ \(online", status) is not None
        )

    def _spawn(self, name: str, args: list[str], stderr: int | None = None) -> subprocess.Popen[bytes]:
        out = (self.workdir / f"{name}.out").open("ab")
        try:
            proc = subprocess.Popen(
                args,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=stderr if stderr is not None else out,
                start_new_session=True,
            )
        finally:
            out.close()
        self._procs[name] = proc
        return proc

    def _wait_until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            for name, proc in self._procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}\n{self.logs()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"Kannel: {what} not reached within {timeout}s\n{self.logs()}")
            time.sleep(0.1)


def _terminate(proc: subprocess.Popen[bytes], graceful: bool) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM if graceful else signal.SIGKILL)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _digits(number: str) -> str:
    return re.sub(r"\D", "", number)


def _url_bytes(value: str) -> bytes:
    """Kannel's octstr_url_encode output back to bytes (`+` is an encoded space)."""
    return unquote_to_bytes(value.replace("+", "%20"))


def _decode_payload(payload: bytes) -> tuple[str, str]:
    """Text of a concatenated part: fakesmsc does not say the coding there. Kannel keeps GSM-7
    text as UTF-8 internally, which never contains NUL; UTF-16BE of any text we send does."""
    if b"\x00" not in payload:
        with contextlib.suppress(UnicodeDecodeError):
            return payload.decode("utf-8"), "gsm7"
    return payload.decode("utf-16-be"), "ucs2"


def _concatenation(udh: bytes) -> tuple[int, int, int]:
    """(reference, total parts, this part) from a concatenation UDH (IEI 0 or 8), else (0, 1, 1)."""
    i = 1
    while i + 1 < len(udh):
        iei, length = udh[i], udh[i + 1]
        value = udh[i + 2 : i + 2 + length]
        if iei == 0x00 and length == 3:
            return value[0], value[1], value[2]
        if iei == 0x08 and length == 4:
            return (value[0] << 8) | value[1], value[2], value[3]
        i += 2 + length
    return 0, 1, 1
