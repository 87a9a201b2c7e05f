"""Zalo test fixtures: the simulated Zalo on a free port, fixture bodies, Zalo settings."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings
from tests.support.zalo_sim import SimConfig, ZaloSimulator

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "zalo"
BOT_SECRET = "bot-webhook-secret-0123"


def load_fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


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


class RecordingDispatcher:
    """The JobDispatcher seam of the web app, recording what would be queued for the workers."""

    def __init__(self) -> None:
        self.inbound: list[int] = []

    def inbound_received(self, event_id: int) -> None:
        self.inbound.append(event_id)


@pytest.fixture
def dispatcher() -> RecordingDispatcher:
    return RecordingDispatcher()
