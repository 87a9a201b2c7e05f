"""Zalo as observed after an outage and in the OA window: the simulator answers like the real
platform (bare bot webhook bodies, -220 for an expired OA token, 404 from getWebhookInfo without
a webhook), and the user's reactions, clicks and forms count as interactions."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from redis import Redis
from sqlalchemy.orm import Session, sessionmaker

from bot.channels.zalo import ZaloBotClient
from bot.channels.zalo.simulator import ZaloSimulator
from bot.channels.zalo.simulator.citizen import bot_update
from bot.channels.zalo.types import parse_oa_event, validation_summary
from bot.channels.zalo_oa.parse import describe_oa_event
from config.settings import Settings
from storage.crypto import PhoneVault
from storage.models import InboundEvent
from tests.support.app import RecordingDispatcher, app_client
from tests.zalo.conftest import BOT_SECRET
from tests.zalo.world import store_record
from workers.zalo_window import last_interaction

USER = "2468013579246801357"


async def test_an_expired_oa_token_is_minus_220_and_an_unknown_one_minus_216(zalo_sim: ZaloSimulator) -> None:
    access, _refresh = zalo_sim.issue_tokens()
    body = {"recipient": {"user_id": USER}, "message": {"text": "Câu 1"}}
    url = f"{zalo_sim.base_url}/v3.0/oa/message/cs"
    async with httpx.AsyncClient() as http:
        good = (await http.post(url, json=body, headers={"access_token": access})).json()
        zalo_sim.expire_access_tokens()
        expired = (await http.post(url, json=body, headers={"access_token": access})).json()
        unknown = (await http.post(url, json=body, headers={"access_token": "never-issued"})).json()
    assert good["error"] == 0
    assert expired["error"] == -220
    assert unknown["error"] == -216


async def test_get_webhook_info_without_a_webhook_is_404_and_reads_as_none(zalo_sim: ZaloSimulator) -> None:
    token = zalo_sim.config.bot_token
    async with httpx.AsyncClient() as http:
        raw = await http.post(f"{zalo_sim.base_url}/bot{token}/getWebhookInfo", json={})
    assert raw.status_code == 404
    async with ZaloBotClient(token, zalo_sim.base_url) as bot:
        assert (await bot.get_webhook_info()).url == ""


async def test_the_simulator_posts_bare_bot_bodies_by_default(
    zalo_sim: ZaloSimulator,
    zalo_settings: Settings,
    sessions: sessionmaker[Session],
    vault: PhoneVault,
    redis: Redis,
) -> None:
    update = bot_update("6ede9afa66b88fe6d6a9", "5", message_id="bare-1")
    async with app_client(zalo_settings, sessions, vault, redis, RecordingDispatcher()) as client:
        status, _ = await zalo_sim.deliver_bot_event(
            str(client.make_url("/webhooks/zalo/bot")), update, secret=BOT_SECRET
        )
    assert status == 200
    with sessions() as session:
        [event] = session.query(InboundEvent).all()
        assert json.loads(vault.decrypt(event.payload_enc)) == update  # no {"ok", "result"} wrapper


def _oa(event_name: str, **extra: Any) -> dict[str, Any]:
    return {
        "app_id": "3051234567890123456",
        "event_name": event_name,
        "sender": {"id": USER},
        "recipient": {"id": "4301234567890123456"},
        "timestamp": "1764500000000",
        **extra,
    }


INTERACTIONS = [
    _oa("user_reacted_message", message={"msg_id": "m-1", "react_icon": "/-heart"}),
    _oa("user_click_chatnow"),
    _oa("user_submit_info", info={"name": "Dân", "phone": "0912345678"}),
]


@pytest.mark.parametrize(
    "event",
    [*INTERACTIONS, _oa("user_click_button", message={"msg_id": "m-2"})],
    ids=lambda e: e["event_name"],
)
def test_reactions_clicks_and_forms_name_their_user(event: dict[str, Any]) -> None:
    assert parse_oa_event(event).user_id == USER
    assert describe_oa_event(event).sender == USER


def test_what_the_oa_sent_names_the_recipient() -> None:
    seen = _oa("user_seen_message", sender={"id": "4301234567890123456"}, recipient={"id": USER})
    assert parse_oa_event(seen).user_id == USER


@pytest.mark.parametrize("event", INTERACTIONS, ids=lambda e: e["event_name"])
def test_reactions_clicks_and_forms_count_for_the_oa_window(
    event: dict[str, Any], sessions: sessionmaker[Session], vault: PhoneVault
) -> None:
    store_record(sessions, vault, describe_oa_event(event), json.dumps(event))
    with sessions() as session:
        last = last_interaction(session, vault.lookup_hash(USER))
    assert last is not None
    assert abs((datetime.now(UTC) - last).total_seconds()) < 600


def test_a_validation_error_is_summarised_without_the_input() -> None:
    bad = _oa("user_feedback", message={"rate": "six", "note": "số 0912345678, Nguyễn Văn A"})
    with pytest.raises(ValidationError) as raised:
        parse_oa_event(bad)
    summary = validation_summary(raised.value)
    assert "rate" in summary
    for secret in ("0912345678", "Nguyễn", "six", USER):
        assert secret not in summary
    assert "input_value='six'" in str(raised.value)  # the old log line carried the input
