"""Zalo test fixtures: the simulated Zalo on a free port, fixture bodies (kept with their
provider: bot/channels/zalo_bot/fixtures, bot/channels/zalo_oa/fixtures), Zalo settings."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from redis import Redis
from sqlalchemy.orm import Session, sessionmaker

from bot.channels.zalo.simulator import SimConfig, ZaloSimulator
from bot.channels.zalo.simulator.threaded import ThreadedSimulator
from bot.channels.zalo.token_store import DatabaseTokenStore
from bot.channels.zalo.tokens import OATokens
from config.settings import PROJECT_ROOT, Settings
from storage.crypto import PhoneVault
from workers.runtime import Runtime

_CHANNELS = PROJECT_ROOT / "bot" / "channels"
# Fixture names say what they hold ("bot/text.wrapped.json", "zns/send_success.json"); each
# group lives in its provider's fixtures/ folder.
FIXTURES = {
    "bot": _CHANNELS / "zalo_bot" / "fixtures" / "events",
    "bot_api": _CHANNELS / "zalo_bot" / "fixtures" / "api",
    "oa": _CHANNELS / "zalo_oa" / "fixtures" / "events",
    "oa_api": _CHANNELS / "zalo_oa" / "fixtures" / "api",
    "zns": _CHANNELS / "zalo_oa" / "fixtures" / "zns",
}
BOT_SECRET = "bot-webhook-secret-0123"


def load_fixture(name: str) -> Any:
    group, _, file = name.partition("/")
    return json.loads((FIXTURES[group] / file).read_text(encoding="utf-8"))


@pytest.fixture
def fixture_json() -> Callable[[str], Any]:
    return load_fixture


@pytest.fixture
def sim_config() -> SimConfig:
    # Long polls answer at once when nothing is queued: tests never wait on a clock.
    return SimConfig(long_poll_cap=0)


@pytest.fixture
async def zalo_sim(sim_config: SimConfig) -> AsyncIterator[ZaloSimulator]:
    async with ZaloSimulator(sim_config) as sim:
        yield sim


@pytest.fixture
def zalo_settings(settings: Settings, sim_config: SimConfig) -> Settings:
    """The test settings with the Zalo part pointing at the simulator's identities."""
    return settings.model_copy(
        update={
            "ZALO_BOT_TOKEN": sim_config.bot_token,
            "ZALO_BOT_SECRET_TOKEN": BOT_SECRET,
            "ZALO_OA_APP_ID": sim_config.app_id,
            "ZALO_OA_SECRET_KEY": sim_config.oa_secret_key,
            "ZALO_APP_SECRET": sim_config.app_secret,
        }
    )


# --- the Zalo channel end to end inside one process (real database, Redis, simulator over HTTP) ---

RATING_TEMPLATE = "tpl-rating-001"
ZALO_FIRST = "ZP"  # a province whose rule is zalo_first; its child ZP-W inherits it


@pytest.fixture
def threaded_zalo(sim_config: SimConfig) -> Iterator[ThreadedSimulator]:
    with ThreadedSimulator(sim_config) as zalo:
        yield zalo


@pytest.fixture
def channels_file(tmp_path: Path) -> Path:
    path = tmp_path / "channels.yaml"
    path.write_text(f"agencies:\n  {ZALO_FIRST}:\n    strategy: zalo_first\n", encoding="utf-8")
    return path


@pytest.fixture
def zalo_runtime(
    zalo_settings: Settings,
    threaded_zalo: ThreadedSimulator,
    channels_file: Path,
    sessions: sessionmaker[Session],
    vault: PhoneVault,
    redis: Redis,
) -> Runtime:
    """A worker's runtime whose Zalo settings point at the simulator, with the OA authorised."""
    base = threaded_zalo.sim.base_url
    settings = zalo_settings.model_copy(
        update={
            "ZALO_BOT_API_BASE": base,
            "ZALO_OA_API_BASE": base,
            "ZALO_OAUTH_BASE": base,
            "ZNS_API_BASE": base,
            "ZNS_RATING_TEMPLATE_ID": RATING_TEMPLATE,
            "SIPAS_CHANNELS_FILE": channels_file,
        }
    )
    runtime = Runtime(settings=settings, sessions=sessions, vault=vault, redis=redis)
    access, refresh = threaded_zalo.sim.issue_tokens()
    store = DatabaseTokenStore(sessions, vault, redis, settings.ZALO_OA_APP_ID)
    asyncio.run(store.save(OATokens(access, refresh, datetime.now(UTC) + timedelta(hours=25))))
    return runtime
