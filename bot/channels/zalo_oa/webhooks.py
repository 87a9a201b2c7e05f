"""`POST /webhooks/zalo/oa`: Zalo Official Account and ZNS events, authenticated by
`X-ZEvent-Signature` over app id, body and timestamp.

Refused, with a JSON error and before storing anything: the app id or signing key not set (503
not_configured), bodies over 64 KiB (413), a missing or wrong signature (401), events older than a
day, more than 10 minutes ahead, or for another app (403), bodies that are not UTF-8 JSON event
objects, nest too deep or hold NUL or unpaired surrogates (400). Replay protection is by the
event's id (de-duplicated when stored), so a correctly signed event Zalo retries after our outage
(with its original body and timestamp, for about an hour) is still stored. An accepted event is
stored once, then handed over (bot.channels.zalo.webhook).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import structlog
from aiohttp import web

from bot.bodies import decode_json
from bot.channels.zalo.webhook import accept, describe_or_refuse, read_event_body
from bot.channels.zalo_oa.parse import describe_oa_event
from bot.context import CONTEXT
from bot.errors import RefusedError
from config.settings import Settings

__all__ = ["OA_PATH", "OA_SIGNATURE_HEADER", "oa_signature", "oa_signature_key", "routes"]

log = structlog.get_logger(__name__)

routes = web.RouteTableDef()

OA_PATH = "/webhooks/zalo/oa"
OA_SIGNATURE_HEADER = "X-ZEvent-Signature"
# Zalo retries a failed delivery with the original body and timestamp for about an hour (30 s,
# 5 min, 15 min, 30 min, 1 h): such an event must still be accepted after an outage of ours. A
# replay is recognised by the event's id (de-duplicated when stored), so the age bound is only a
# sanity limit, far beyond Zalo's retries; timestamps more than a few minutes ahead are refused.
MAX_EVENT_AGE_SECONDS = 24 * 3600
MAX_EVENT_LEAD_SECONDS = 10 * 60
_MAX_TIMESTAMP_DIGITS = 15  # milliseconds until the year 33,658


def oa_signature_key(settings: Settings) -> str:
    """The secret that signs OA events, per ZALO_OA_SIGNATURE_KEY."""
    if settings.ZALO_OA_SIGNATURE_KEY == "app_secret":
        return settings.ZALO_APP_SECRET
    return settings.ZALO_OA_SECRET_KEY


def oa_signature(app_id: str, raw_body: str, timestamp: str, key: str) -> str:
    """hex sha256(app_id + raw_body + timestamp + key): Zalo's documented X-ZEvent-Signature mac."""
    return hashlib.sha256(f"{app_id}{raw_body}{timestamp}{key}".encode()).hexdigest()


def _event_seconds(stamp: str | int) -> float:
    """Zalo timestamps are milliseconds; a seconds value (some senders) is accepted too."""
    text = str(stamp).strip()
    if not text.isdecimal() or not text.isascii() or len(text) > _MAX_TIMESTAMP_DIGITS:
        raise RefusedError(400, "not_an_event", "the event timestamp is not a Unix time in milliseconds")
    timestamp = int(text)
    return timestamp / 1000 if timestamp > 10**11 else float(timestamp)


def _check_oa_event(settings: Settings, header: str, raw: str, payload: Any) -> None:
    """Refuse (RefusedError) an event that is not for our app, not signed by it, or out of time."""
    event = payload.get("result", payload) if isinstance(payload, dict) and "ok" in payload else payload
    if not isinstance(event, dict):
        raise RefusedError(400, "not_an_event", "the body is not a JSON object")
    app_id, stamp = event.get("app_id"), event.get("timestamp")
    if not isinstance(app_id, str | int) or not isinstance(stamp, str | int) or isinstance(stamp, bool):
        raise RefusedError(400, "not_an_event", "the event has no app_id or timestamp")
    if str(app_id) != settings.ZALO_OA_APP_ID:
        raise RefusedError(403, "wrong_app", "the event is for another Zalo app")
    expected = oa_signature(settings.ZALO_OA_APP_ID, raw, str(stamp), oa_signature_key(settings))
    given = header.strip()
    given = given[4:] if given.lower().startswith("mac=") else given
    if not hmac.compare_digest(given.lower().encode("ascii", "replace"), expected.encode("ascii")):
        raise RefusedError(401, "bad_signature", f"{OA_SIGNATURE_HEADER} does not match the body")
    age = time.time() - _event_seconds(stamp)
    if age > MAX_EVENT_AGE_SECONDS:
        raise RefusedError(403, "stale_event", "the event is more than a day old")
    if -age > MAX_EVENT_LEAD_SECONDS:
        raise RefusedError(403, "future_event", "the event timestamp is more than 10 minutes ahead")
    if age > 60:
        log.info("zalo_oa_event_late", age_seconds=int(age))


@routes.post(OA_PATH)
async def zalo_oa_webhook(request: web.Request) -> web.Response:
    """OA and ZNS events, authenticated by X-ZEvent-Signature over app id, body and timestamp."""
    settings = request.app[CONTEXT].settings
    try:
        if not settings.ZALO_OA_APP_ID or not oa_signature_key(settings):
            raise RefusedError(503, "not_configured", "the Zalo OA app id or signing key is not set")
        body = await read_event_body(request)
        header = request.headers.get(OA_SIGNATURE_HEADER)
        if not header:
            raise RefusedError(401, "bad_signature", f"missing {OA_SIGNATURE_HEADER}")
        raw, payload = decode_json(body)
        _check_oa_event(settings, header, raw, payload)
        record = describe_or_refuse(describe_oa_event, payload)
    except RefusedError as refused:
        log.info("zalo_oa_event_refused", status=refused.response.status)
        return refused.response
    return await accept(request, record, raw)
