"""`sipas zalo ...` against the simulated Bot Platform, through click."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from redis import Redis
from rq import Queue
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.channels.zalo.simulator import ZaloSimulator
from bot.channels.zalo.simulator.citizen import bot_update
from config.settings import get_settings
from storage.crypto import PhoneVault
from storage.models import InboundEvent
from tests.conftest import SECRET_KEY
from tests.zalo.conftest import BOT_SECRET
from workers.cli import cli
from workers.queues import DEFAULT_QUEUE


@pytest.fixture
def env(
    db_url: str, redis_url: str, zalo_sim: ZaloSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Process settings as the CLI reads them, pointing at the simulator (no .env: empty dir)."""
    monkeypatch.chdir(tmp_path)
    for name, value in {
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_url,
        "SIPAS_SECRET_KEY": SECRET_KEY,
        "ZALO_BOT_TOKEN": zalo_sim.config.bot_token,
        "ZALO_BOT_SECRET_TOKEN": BOT_SECRET,
        "ZALO_BOT_API_BASE": zalo_sim.base_url,
    }.items():
        monkeypatch.setenv(name, value)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
    root.handlers[:], root.level = handlers, level  # `poll` configures logging for its process


async def sipas(*args: str) -> Result:
    """Run the CLI in a thread: it runs its own event loop, the simulator serves from ours."""
    return await asyncio.to_thread(CliRunner().invoke, cli, ["zalo", *args])


async def test_set_inspect_and_delete_the_webhook(env: None, zalo_sim: ZaloSimulator) -> None:
    target = "https://sipas.example.gov.vn/webhooks/zalo/bot"
    set_result = await sipas("set-webhook", target)
    assert set_result.exit_code == 0, set_result.output
    assert json.loads(set_result.stdout)["url"] == target
    assert (zalo_sim.webhook_url, zalo_sim.webhook_secret) == (target, BOT_SECRET)
    info = await sipas("webhook-info")
    assert json.loads(info.stdout)["url"] == target
    deleted = await sipas("delete-webhook")
    assert deleted.exit_code == 0, deleted.output
    assert zalo_sim.webhook_url == ""
    assert json.loads((await sipas("webhook-info")).stdout)["url"] == ""


async def test_a_refusal_is_one_clear_line(env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZALO_BOT_TOKEN", "1:wrong")
    get_settings.cache_clear()
    result = await sipas("webhook-info")
    assert result.exit_code == 1
    assert "Zalo refused" in result.output
    assert "Unauthorized" in result.output
    assert "1:wrong" not in result.output


async def test_poll_stores_each_update_once_and_queues_it(
    env: None,
    zalo_sim: ZaloSimulator,
    sessions: sessionmaker[Session],
    vault: PhoneVault,
    redis: Redis,
) -> None:
    update = bot_update("u-42", "Rất hài lòng", message_id="poll-1")
    zalo_sim.push_update(update)
    zalo_sim.push_update(update)  # getUpdates has no offset: the same message may come twice
    first = await sipas("poll", "--once", "--timeout", "1")
    second = await sipas("poll", "--once", "--timeout", "1")
    empty = await sipas("poll", "--once", "--timeout", "1")
    assert first.exit_code == 0, first.output
    assert [json.loads(r.stdout)["duplicate"] for r in (first, second)] == [False, True]
    assert empty.exit_code == 0
    assert empty.stdout == ""
    with sessions() as session:
        [event] = session.scalars(select(InboundEvent)).all()
    assert (event.provider, event.kind, event.provider_id) == ("zalo_bot", "message.text.received", "poll-1")
    assert json.loads(vault.decrypt(event.payload_enc)) == update
    assert event.sender_hash == vault.lookup_hash("u-42")
    assert Queue(DEFAULT_QUEUE, connection=redis).job_ids == ["drain-inbound-1"]  # coalesced wake-up
