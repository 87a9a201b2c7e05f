"""Async client for the Zalo Bot Platform API (`<base>/bot<TOKEN>/<method>`, POST JSON).

The bot token is part of every URL, so it must never reach a log line: errors name the method,
never the URL, and config/logging.py masks `/bot<TOKEN>/` in every logged line (httpx logs URLs).
"""

from __future__ import annotations

from typing import Any

import httpx

from bot.channels.zalo.exceptions import (
    ZaloPermanentError,
    ZaloServerError,
    raise_for_bot_envelope,
    transport_failure,
)
from bot.channels.zalo.http_client import ZaloHttpClient
from bot.channels.zalo.types import BotInfo, BotUpdate, BotWebhookInfo, SentBotMessage, parse_bot_update

__all__ = ["DEFAULT_BOT_API_BASE", "MAX_TEXT_LENGTH", "ZaloBotClient", "check_text"]

DEFAULT_BOT_API_BASE = "https://bot-api.zaloplatforms.com"
MAX_TEXT_LENGTH = 2000


def check_text(text: str) -> str:
    """Zalo accepts 1..2000 characters per text message; refuse before the round trip."""
    if not text or not text.strip():
        raise ZaloPermanentError("text is empty", method="check_text")
    if len(text) > MAX_TEXT_LENGTH:
        raise ZaloPermanentError(
            f"text has {len(text)} characters, the limit is {MAX_TEXT_LENGTH}", method="check_text"
        )
    return text


class ZaloBotClient(ZaloHttpClient):
    """One bot, one token. Pass `http` to share a client; otherwise one is opened and closed here."""

    def __init__(
        self,
        token: str,
        base_url: str = DEFAULT_BOT_API_BASE,
        *,
        http: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
    ) -> None:
        if not token:
            raise ValueError("a Zalo bot token is required")
        self._prefix = f"{base_url.rstrip('/')}/bot{token}"
        super().__init__(http, timeout)
        self._timeout = timeout

    async def call(
        self, method: str, payload: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> Any:
        """POST one method and return its `result`; every failure is a typed ZaloError."""
        try:
            response = await self._http.post(
                f"{self._prefix}/{method}", json=payload or {}, timeout=timeout or self._timeout
            )
        except httpx.HTTPError as exc:
            raise transport_failure(exc, "Bot API", method) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        return raise_for_bot_envelope(response.status_code, body, method=method, headers=response.headers)

    async def get_me(self) -> BotInfo:
        return BotInfo.model_validate(await self.call("getMe"))

    async def get_raw_updates(self, timeout: int = 30) -> list[dict[str, Any]]:
        """Long-poll once. The platform returns one update (documented) or a list (seen): both
        become a list; a 408 means nothing arrived within `timeout` and gives []."""
        try:
            result = await self.call("getUpdates", {"timeout": str(timeout)}, timeout=timeout + 10)
        except ZaloServerError as exc:
            if exc.code == 408:
                return []
            raise
        if result is None:
            return []
        items = result if isinstance(result, list) else [result]
        return [item for item in items if isinstance(item, dict)]

    async def get_updates(self, timeout: int = 30) -> list[BotUpdate]:
        return [parse_bot_update(item) for item in await self.get_raw_updates(timeout)]

    async def set_webhook(self, url: str, secret_token: str) -> BotWebhookInfo:
        if not 8 <= len(secret_token) <= 256:
            raise ZaloPermanentError("secret_token must have 8 to 256 characters", method="setWebhook")
        if not url.startswith("https://") and not url.startswith("http://"):
            raise ZaloPermanentError("webhook url must be an http(s) URL", method="setWebhook")
        result = await self.call("setWebhook", {"url": url, "secret_token": secret_token})
        return BotWebhookInfo.model_validate(result if isinstance(result, dict) else {"url": url})

    async def delete_webhook(self) -> BotWebhookInfo:
        result = await self.call("deleteWebhook")
        return BotWebhookInfo.model_validate(result if isinstance(result, dict) else {})

    async def get_webhook_info(self) -> BotWebhookInfo:
        """The webhook Zalo posts to; url "" when none is set (Zalo answers that with 404)."""
        try:
            result = await self.call("getWebhookInfo")
        except ZaloPermanentError as exc:
            if exc.code == 404:
                return BotWebhookInfo()
            raise
        return BotWebhookInfo.model_validate(result if isinstance(result, dict) else {})

    async def send_message(self, chat_id: str, text: str) -> SentBotMessage:
        result = await self.call("sendMessage", {"chat_id": chat_id, "text": check_text(text)})
        return SentBotMessage.model_validate(result)

    async def send_chat_action(self, chat_id: str, action: str = "typing") -> None:
        await self.call("sendChatAction", {"chat_id": chat_id, "action": action})
