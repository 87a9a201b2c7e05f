"""Sending as the Official Account: a customer-service text to an OA user, and a ZNS template to
a phone number (the rating invitation).

The send job (workers/gateways.py) calls these for outbox rows on the `zalo_oa` and `zns` routes,
with the OA's token store (bot.channels.zalo.token_store: the pair in the database, refreshed by
one process at a time), and maps a ZaloError onto what the outbox does with the row
(`failure_from_zalo`): -213/-230 (not a follower, outside the window) and -108/-118/-114/-119/-139
/-141 (no Zalo on that phone, ZNS refused) are unreachable (the survey moves to SMS).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.channels.zalo.exceptions import ZaloPermanentError
from bot.channels.zalo.oa_api import ZaloOAClient, ZNSClient
from bot.channels.zalo.tokens import TokenStore
from bot.channels.zalo.types import OASendResult, ZNSSendResult
from config.settings import Settings

__all__ = ["send_cs_text", "send_rating_template"]


async def send_cs_text(settings: Settings, tokens: TokenStore, user_id: str, text: str) -> OASendResult:
    """A customer-service message (`/v3.0/oa/message/cs`) within SIPAS_SEND_TIMEOUT (raises ZaloError)."""
    async with ZaloOAClient(
        settings.ZALO_OA_API_BASE,
        settings.ZALO_OAUTH_BASE,
        settings.ZALO_OA_APP_ID,
        settings.ZALO_APP_SECRET,
        tokens,
        timeout=settings.SIPAS_SEND_TIMEOUT,
    ) as oa:
        return await oa.send_cs_message(user_id, text)


async def send_rating_template(
    settings: Settings, tokens: TokenStore, phone: str, payload: Mapping[str, Any], tracking_id: str
) -> ZNSSendResult:
    """The ZNS template an outbox row's `payload` names (`template_id`, `template_data`) to `phone`
    (84912345678); `payload["tracking_id"]` wins over `tracking_id` (raises ZaloError)."""
    template_id = str(payload.get("template_id") or "")
    if not template_id:
        raise ZaloPermanentError("no ZNS template id (ZNS_RATING_TEMPLATE_ID)", method="/message/template")
    async with ZNSClient(
        settings.ZNS_API_BASE,
        settings.ZALO_OAUTH_BASE,
        settings.ZALO_OA_APP_ID,
        settings.ZALO_APP_SECRET,
        tokens,
        timeout=settings.SIPAS_SEND_TIMEOUT,
    ) as zns:
        return await zns.send_template(
            phone,
            template_id,
            dict(payload.get("template_data") or {}),
            tracking_id=str(payload.get("tracking_id") or tracking_id),
        )
