"""Sending on the Zalo Bot Platform: one text to the chat a citizen opened with the bot.

The send job (workers/gateways.py) calls `send_text` for an outbox row on the `zalo_bot` route
and maps a ZaloError onto what the outbox does with the row (`failure_from_zalo`): a blocked chat
(403) is unreachable (the survey moves to SMS), 5xx and 429 are retried, a lost answer is kept
`unknown` (never resent by itself: the Bot API has no idempotency key).
"""

from __future__ import annotations

from bot.channels.zalo.bot_api import ZaloBotClient
from bot.channels.zalo.exceptions import ZaloPermanentError
from bot.channels.zalo.types import SentBotMessage
from config.settings import Settings

__all__ = ["send_text"]


async def send_text(settings: Settings, chat_id: str, text: str) -> SentBotMessage:
    """`sendMessage` to `chat_id` within SIPAS_SEND_TIMEOUT (raises ZaloError)."""
    if not settings.ZALO_BOT_TOKEN:
        raise ZaloPermanentError("ZALO_BOT_TOKEN is not set", method="sendMessage")
    async with ZaloBotClient(
        settings.ZALO_BOT_TOKEN, settings.ZALO_BOT_API_BASE, timeout=settings.SIPAS_SEND_TIMEOUT
    ) as bot:
        return await bot.send_message(chat_id, text)
