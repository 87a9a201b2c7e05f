"""Sending on the Zalo Bot Platform: one text to the chat a citizen opened with the bot (the
send job's `zalo_bot` route).

Failures are mapped by bot.channels.zalo.sending.failure_from_zalo: a blocked chat (403) is
unreachable (the survey moves to SMS), 5xx and 429 are retried, a lost answer is kept `unknown`
(never resent by itself: the Bot API has no idempotency key).
"""

from __future__ import annotations

from bot.channels.outgoing import Outgoing, SendError, Sent
from bot.channels.zalo.bot_api import ZaloBotClient
from bot.channels.zalo.exceptions import ZaloError
from bot.channels.zalo.sending import ZaloSender, failure_from_zalo
from config.settings import Settings

__all__ = ["ZaloBotSender"]


class ZaloBotSender(ZaloSender):
    """`sendMessage` to the row's chat within SIPAS_SEND_TIMEOUT (bot.channels.outgoing.Sender)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(float(settings.SIPAS_SEND_TIMEOUT))
        self._settings = settings

    async def send(self, message: Outgoing) -> Sent:
        settings = self._settings
        if not settings.ZALO_BOT_TOKEN:
            raise SendError("ZALO_BOT_TOKEN is not set", retryable=False)
        bot = ZaloBotClient(
            settings.ZALO_BOT_TOKEN, settings.ZALO_BOT_API_BASE, http=self.http(), timeout=self._timeout
        )
        try:
            sent = await bot.send_message(message.to, message.text)
        except ZaloError as exc:
            raise failure_from_zalo(exc) from exc
        return Sent(sent.message_id, 1, "text")
