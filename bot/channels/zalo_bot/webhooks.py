"""`POST /webhooks/zalo/bot`: Zalo Bot Platform events, authenticated by the secret token we gave
setWebhook (`X-Bot-Api-Secret-Token`, ZALO_BOT_SECRET_TOKEN).

Refused, with a JSON error and before storing anything: a missing ZALO_BOT_SECRET_TOKEN (503
not_configured: never accepted unauthenticated), bodies over 64 KiB (413), a missing or wrong
secret (401), bodies that are not UTF-8 JSON event objects, nest too deep or hold NUL or unpaired
surrogates (400). An accepted event is stored once, then handed over (bot.channels.zalo.webhook).
"""

from __future__ import annotations

import hmac

import structlog
from aiohttp import web

from bot.bodies import decode_json
from bot.channels.zalo.webhook import accept, describe_or_refuse, read_event_body
from bot.channels.zalo_bot.parse import describe_bot_event
from bot.context import CONTEXT
from bot.errors import RefusedError

__all__ = ["BOT_PATH", "BOT_SECRET_HEADER", "routes"]

log = structlog.get_logger(__name__)

routes = web.RouteTableDef()

BOT_PATH = "/webhooks/zalo/bot"
BOT_SECRET_HEADER = "X-Bot-Api-Secret-Token"  # noqa: S105 (a header name, not a secret)


@routes.post(BOT_PATH)
async def zalo_bot_webhook(request: web.Request) -> web.Response:
    """Bot Platform events, authenticated by the secret token we gave setWebhook."""
    settings = request.app[CONTEXT].settings
    try:
        expected = settings.ZALO_BOT_SECRET_TOKEN
        if not expected:
            raise RefusedError(
                503, "not_configured", "ZALO_BOT_SECRET_TOKEN is not set: bot events are refused"
            )
        body = await read_event_body(request)
        given = request.headers.get(BOT_SECRET_HEADER, "")
        # aiohttp keeps undecodable header bytes as surrogate escapes: compare the bytes as sent.
        if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode("utf-8")):
            raise RefusedError(401, "bad_secret", f"missing or wrong {BOT_SECRET_HEADER}")
        raw, payload = decode_json(body)
        record = describe_or_refuse(describe_bot_event, payload)
    except RefusedError as refused:
        log.info("zalo_bot_event_refused", status=refused.response.status)
        return refused.response
    return await accept(request, record, raw)
