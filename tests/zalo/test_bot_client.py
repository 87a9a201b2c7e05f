"""ZaloBotClient over HTTP against the simulated Bot Platform."""

from __future__ import annotations

import httpx
import pytest

from bot.channels.zalo import BotEventName, ZaloBotClient
from bot.channels.zalo.exceptions import (
    ZaloPermanentError,
    ZaloRateLimited,
    ZaloServerError,
    ZaloTokenInvalid,
    ZaloUnreachable,
)
from bot.channels.zalo.simulator import ZaloSimulator
from bot.channels.zalo.simulator.citizen import BOT_STICKER, bot_update
from tests.support.services import free_port


async def test_get_me_and_send_message(zalo_sim: ZaloSimulator) -> None:
    async with ZaloBotClient(zalo_sim.config.bot_token, zalo_sim.base_url) as bot:
        me = await bot.get_me()
        sent = await bot.send_message("user-1", "Cảm ơn anh/chị đã đánh giá!")
        await bot.send_chat_action("user-1")
    assert me.id == zalo_sim.config.bot_id
    assert zalo_sim.bot_sent == [
        {
            "chat_id": "user-1",
            "text": "Cảm ơn anh/chị đã đánh giá!",
            "message_id": sent.message_id,
            "date": sent.date,
        }
    ]
    assert zalo_sim.bot_actions == [{"chat_id": "user-1", "action": "typing"}]


@pytest.mark.parametrize("text", ["", "   ", "x" * 2001])
async def test_text_outside_1_to_2000_characters_is_refused_before_sending(
    zalo_sim: ZaloSimulator, text: str
) -> None:
    async with ZaloBotClient(zalo_sim.config.bot_token, zalo_sim.base_url) as bot:
        with pytest.raises(ZaloPermanentError):
            await bot.send_message("user-1", text)
        await bot.send_message("user-1", "x" * 2000)
    assert [len(m["text"]) for m in zalo_sim.bot_sent] == [2000]


async def test_webhook_registration_round_trip(zalo_sim: ZaloSimulator) -> None:
    async with ZaloBotClient(zalo_sim.config.bot_token, zalo_sim.base_url) as bot:
        assert (await bot.get_webhook_info()).url == ""
        await bot.set_webhook("https://sipas.example/webhooks/zalo/bot", "secret-token-123")
        info = await bot.get_webhook_info()
        with pytest.raises(ZaloPermanentError, match="8 to 256"):
            await bot.set_webhook("https://sipas.example/webhooks/zalo/bot", "short")
        await bot.delete_webhook()
        after = await bot.get_webhook_info()
    assert info.url == "https://sipas.example/webhooks/zalo/bot"
    assert info.updated_at is not None
    assert zalo_sim.webhook_secret == ""
    assert after.url == ""


async def test_get_updates_returns_queued_update_then_nothing_on_408(zalo_sim: ZaloSimulator) -> None:
    zalo_sim.push_update(bot_update("user-9", "4"))
    zalo_sim.push_update(bot_update("user-9", event_name=BOT_STICKER))
    async with ZaloBotClient(zalo_sim.config.bot_token, zalo_sim.base_url) as bot:
        first = await bot.get_updates(timeout=5)
        second = await bot.get_updates(timeout=5)
        empty = await bot.get_updates(timeout=5)
    assert [(u.event_name, u.text, u.user_id) for u in first] == [(BotEventName.TEXT, "4", "user-9")]
    assert [u.event_name for u in second] == [BotEventName.STICKER]
    assert empty == []


async def test_wrong_token_is_token_invalid(zalo_sim: ZaloSimulator) -> None:
    async with ZaloBotClient("999:wrong", zalo_sim.base_url) as bot:
        with pytest.raises(ZaloTokenInvalid) as caught:
            await bot.get_me()
    assert caught.value.code == 401
    assert "999:wrong" not in str(caught.value)


async def test_blocked_chat_is_unreachable(zalo_sim: ZaloSimulator) -> None:
    zalo_sim.config.blocked_chats.add("blocked")
    async with ZaloBotClient(zalo_sim.config.bot_token, zalo_sim.base_url) as bot:
        with pytest.raises(ZaloUnreachable):
            await bot.send_message("blocked", "Xin chào")
    assert zalo_sim.bot_sent == []


async def test_rate_limit_is_rate_limited(zalo_sim: ZaloSimulator) -> None:
    zalo_sim.config.bot_rate_limit, zalo_sim.config.rate_window = 2, 3600
    async with ZaloBotClient(zalo_sim.config.bot_token, zalo_sim.base_url) as bot:
        await bot.send_message("u", "một")
        await bot.send_message("u", "hai")
        with pytest.raises(ZaloRateLimited) as caught:
            await bot.send_message("u", "ba")
    assert caught.value.code == 429
    assert [m["text"] for m in zalo_sim.bot_sent] == ["một", "hai"]


async def test_unreachable_server_is_a_retryable_server_error_without_the_token() -> None:
    async with ZaloBotClient("123:very-secret", f"http://127.0.0.1:{free_port()}") as bot:
        with pytest.raises(ZaloServerError) as caught:
            await bot.get_me()
    assert caught.value.retryable
    assert "very-secret" not in str(caught.value)
    assert caught.value.__cause__ is None


async def test_an_injected_http_client_is_left_open(zalo_sim: ZaloSimulator) -> None:
    async with httpx.AsyncClient() as http:
        async with ZaloBotClient(zalo_sim.config.bot_token, zalo_sim.base_url, http=http) as bot:
            await bot.get_me()
        assert not http.is_closed
        assert (await http.get(f"{zalo_sim.base_url}/_sim/sent")).status_code == 200
