"""The Zalo client shared by the two Zalo providers (bot/channels/zalo_bot: the Bot Platform;
bot/channels/zalo_oa: the Official Account and ZNS), over httpx in the style of aiogram 3: typed
clients for the Bot Platform, the Official Account and ZNS (bot_api, oa_api, OAuth tokens and their
store), typed events (types), errors (exceptions), how an event is named for storage (events) and
what the two webhooks share (webhook), and a synchronous Router with filters and middlewares that
the inbound job runs its Zalo handlers through (router, filters).

    async with ZaloBotClient(token, base_url) as bot:
        await bot.send_message(chat_id, "Xin chào")

    router = Router()

    @router.message(EventName(BotEventName.TEXT), Text(equals="stop"))
    def stop(update: BotUpdate) -> str: ...
"""

from bot.channels.zalo.bot_api import ZaloBotClient
from bot.channels.zalo.exceptions import (
    ZaloError,
    ZaloPermanentError,
    ZaloRateLimited,
    ZaloServerError,
    ZaloTokenInvalid,
    ZaloTokenRefreshError,
    ZaloUnreachable,
)
from bot.channels.zalo.filters import EventName, Filter, Text
from bot.channels.zalo.oa_api import ZaloOAClient, ZNSClient
from bot.channels.zalo.router import UNHANDLED, Dispatcher, Router
from bot.channels.zalo.tokens import InMemoryTokenStore, OATokens, TokenStore
from bot.channels.zalo.types import (
    BotEventName,
    BotUpdate,
    OAEvent,
    OAEventName,
    parse_bot_update,
    parse_oa_event,
)

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
