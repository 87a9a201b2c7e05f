"""Zalo over httpx in the style of aiogram 3: typed clients for the Bot Platform, the Official
Account and ZNS, typed events, a Router with filters and middlewares, and event intake.

    async with ZaloBotClient(token, base_url) as bot:
        await bot.send_message(chat_id, "Xin chào")

    router = Router()

    @router.message(EventName(BotEventName.TEXT), Text(equals="stop"))
    async def stop(update: BotUpdate) -> None: ...
"""

from bot.zalo.bot_api import ZaloBotClient
from bot.zalo.exceptions import (
    ZaloError,
    ZaloPermanentError,
    ZaloRateLimited,
    ZaloServerError,
    ZaloTokenInvalid,
    ZaloTokenRefreshError,
    ZaloUnreachable,
)
from bot.zalo.filters import EventName, Filter, Text
from bot.zalo.oa_api import ZaloOAClient, ZNSClient
from bot.zalo.router import UNHANDLED, Dispatcher, Router
from bot.zalo.tokens import InMemoryTokenStore, OATokens, TokenStore
from bot.zalo.types import BotEventName, BotUpdate, OAEvent, OAEventName, parse_bot_update, parse_oa_event

__all__ = [
    "UNHANDLED",
    "BotEventName",
    "BotUpdate",
    "Dispatcher",
    "EventName",
    "Filter",
    "InMemoryTokenStore",
    "OAEvent",
    "OAEventName",
    "OATokens",
    "Router",
    "Text",
    "TokenStore",
    "ZNSClient",
    "ZaloBotClient",
    "ZaloError",
    "ZaloOAClient",
    "ZaloPermanentError",
    "ZaloRateLimited",
    "ZaloServerError",
    "ZaloTokenInvalid",
    "ZaloTokenRefreshError",
    "ZaloUnreachable",
    "parse_bot_update",
    "parse_oa_event",
]
