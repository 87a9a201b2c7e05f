"""Secrets never reach a log line: real sends through the Kannel sender (to a real Kannel)
and the Zalo bot client (to the simulator) with INFO logs captured, then grepped for every secret.
Also database/Redis URLs and formatted tracebacks."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest
import structlog

from bot.channels.kannel import KannelSender, dlr_token
from bot.channels.outgoing import Outgoing
from bot.channels.zalo.bot_api import ZaloBotClient
from bot.channels.zalo.simulator import ZaloSimulator
from config.logging import configure_logging, mask, mask_secrets
from config.settings import Settings
from storage.models import Route
from tests.support.kannel import KannelHarness

PHONE = "+84912345678"


class Captured:
    """What the service's log handler wrote to stderr."""

    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    @property
    def text(self) -> str:
        return self.stream.getvalue()


@pytest.fixture
def json_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Captured]:
    """The service's own logging set-up at INFO (stderr captured), restored afterwards."""
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging("INFO")
    yield Captured(stream)
    root.handlers[:], root.level = handlers, level
    structlog.reset_defaults()


@pytest.mark.kannel
async def test_a_real_kannel_send_logs_no_password_token_or_phone(
    settings: Settings, kannel: KannelHarness, json_logs: Captured
) -> None:
    """The Kannel sender (aiohttp) logs no request line of its own; whatever is logged around a
    real send holds none of the secrets its URL carries."""
    configured = settings.model_copy(update=kannel.settings_overrides())
    sender = KannelSender(configured)
    try:
        await sender.send(Outgoing(42, None, Route.SMS, PHONE, "Cam on ban"))
    finally:
        await sender.aclose()
    assert kannel.phone.wait_for_mt(to=PHONE).text == "Cam on ban"
    err = json_logs.text
    for secret in (kannel.password, dlr_token(kannel.mo_token, "42"), "912345678"):
        assert secret not in err


async def test_a_zalo_bot_send_logs_no_bot_token(zalo_sim: ZaloSimulator, json_logs: Captured) -> None:
    token = zalo_sim.config.bot_token
    async with ZaloBotClient(token, base_url=zalo_sim.base_url) as bot:
        await bot.send_message("chat-1", "Xin chao")
    err = json_logs.text
    requests = [json.loads(line)["event"] for line in err.splitlines() if '"httpx"' in line]
    assert requests
    assert "/bot***/sendMessage" in requests[0]
    assert token not in err
    assert token.split(":")[1] not in err


def test_database_and_redis_urls_are_masked(json_logs: Captured) -> None:
    structlog.get_logger("t").info("connecting", database="postgresql://sipas:pg-Pass-1@db:5432/sipas")
    logging.getLogger("lib").warning("redis at %s", "redis://:redis-Pass-2@127.0.0.1:6379/0")
    err = json_logs.text
    assert "pg-Pass-1" not in err
    assert "redis-Pass-2" not in err
    assert "postgresql://sipas:***@db:5432/sipas" in err
    assert "redis://:***@127.0.0.1:6379/0" in err


def test_tracebacks_are_masked_after_formatting(json_logs: Captured) -> None:
    try:
        raise ValueError("cannot send to 0912345678 via http://k/cgi-bin/sendsms?password=tb-Pass-3")
    except ValueError:
        structlog.get_logger("t").exception("send failed")
        logging.getLogger("lib").exception("library failed")
    err = json_logs.text
    lines = [json.loads(line) for line in err.splitlines()]
    assert len(lines) == 2
    assert all("Traceback" in line["exception"] for line in lines)
    assert "0912345678" not in err
    assert "tb-Pass-3" not in err
    assert "***678" in lines[0]["exception"]


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("GET /sendsms?username=u&password=p%21w&to=1", "GET /sendsms?username=u&password=***&to=1"),
        ("dlr-url=h%3Fref%3D4%26token%3Dab12%26status", "dlr-url=h%3Fref%3D4%26token%3D***%26status"),
        ("https://h/x?access_token=abc.def&y=2", "https://h/x?access_token=***&y=2"),
        ("client_secret=s3 next", "client_secret=*** next"),
        ("{'refresh_token': 'rt-1', 'n': 2}", "{'refresh_token': '***', 'n': 2}"),
        ('{"secret_key": "k"}', '{"secret_key": "***"}'),
        ("https://bot-api.zaloplatforms.com/bot123:AbC-_9/getMe", "https://bot-api.zaloplatforms.com/bot***/getMe"),
        ("amqp://guest:guest@h/", "amqp://guest:***@h/"),
        ("sqlite:///var/sipas.db", "sqlite:///var/sipas.db"),
        ("the token expired; a password is required", "the token expired; a password is required"),
    ],
)  # fmt: skip
def test_mask_secrets(text: str, masked: str) -> None:
    assert mask_secrets(text) == masked


def test_mask_does_both() -> None:
    assert mask("to=84912345678&password=x") == "to=***678&password=***"
