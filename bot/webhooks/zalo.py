"""Zalo webhooks: `POST /webhooks/zalo/bot` (Bot Platform) and `POST /webhooks/zalo/oa` (OA/ZNS).

Each view refuses, with a JSON error and before storing anything: bodies over 64 KiB (413), a
missing or wrong secret/signature (401), OA events older than a day and events for another app
(403), bodies that are not UTF-8 JSON event objects, nest too deep or hold NUL or unpaired
surrogates (400). An accepted event is stored raw and encrypted, committed, and only then handed
to the workers (bot.channels.intake, the path every channel webhook shares); Zalo gets its 200
well within the 2 s it allows. A redelivered or replayed event answers 200
`{"status": "duplicate"}` and is not processed again: replay protection is by the event's id, so
a correctly signed event Zalo retries after our outage (with its original body and timestamp,
for about an hour) is still stored. Only a failure to store answers 503.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import structlog
from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from bot.bodies import decode_json, read_limited
from bot.channels.intake import storage_unavailable, store_and_wake
from bot.context import CONTEXT, AppContext
from bot.errors import RefusedError
from bot.zalo.inbound import InboundRecord, NotAnEventError, describe_bot_event, describe_oa_event
from config.settings import Settings

log = structlog.get_logger(__name__)

routes = web.RouteTableDef()

MAX_EVENT_BYTES = 64 * 1024
# Zalo retries a failed delivery with the original body and timestamp for about an hour (30 s,
# 5 min, 15 min, 30 min, 1 h): such an event must still be accepted after an outage of ours. A
# replay is recognised by the event's id (de-duplicated when stored), so the age bound is only a
# sanity limit, far beyond Zalo's retries; timestamps more than a few minutes ahead are refused.
MAX_EVENT_AGE_SECONDS = 24 * 3600
MAX_EVENT_LEAD_SECONDS = 10 * 60
_MAX_TIMESTAMP_DIGITS = 15  # milliseconds until the year 33,658
BOT_SECRET_HEADER = "X-Bot-Api-Secret-Token"  # noqa: S105 (a header name, not a secret)
OA_SIGNATURE_HEADER = "X-ZEvent-Signature"


async def _read_limited(request: web.Request) -> bytes:
    """The body, or 413 as soon as it is known to exceed MAX_EVENT_BYTES (without reading it all)."""
    too_large = RefusedError(413, "payload_too_large", f"Zalo events are at most {MAX_EVENT_BYTES} bytes")
    return await read_limited(request, MAX_EVENT_BYTES, too_large)


async def _accept(request: web.Request, record: InboundRecord, raw: str) -> web.Response:
    ctx: AppContext = request.app[CONTEXT]
    try:
        stored = await store_and_wake(
            ctx, provider=record.provider, kind=record.kind, provider_id=record.provider_id, payload=raw,
            sender=record.user_id,
        )  # fmt: skip
    except SQLAlchemyError as exc:
        return storage_unavailable(record.provider, exc)
    return web.json_response({"status": "duplicate" if stored.duplicate else "stored"})


def _describe(describe: Any, payload: Any) -> InboundRecord:
    try:
        record: InboundRecord = describe(payload)
    except NotAnEventError as exc:
        raise RefusedError(400, "not_an_event", str(exc)) from None
    return record


@routes.post("/webhooks/zalo/bot")
async def zalo_bot_webhook(request: web.Request) -> web.Response:
    """Bot Platform events, authenticated by the secret token we gave setWebhook."""
    settings = request.app[CONTEXT].settings
    try:
        expected = settings.ZALO_BOT_SECRET_TOKEN
        if not expected:
            raise RefusedError(
                503, "not_configured", "ZALO_BOT_SECRET_TOKEN is not set: bot events are refused"
            )
        body = await _read_limited(request)
        given = request.headers.get(BOT_SECRET_HEADER, "")
        # aiohttp keeps undecodable header bytes as surrogate escapes: compare the bytes as sent.
        if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode("utf-8")):
            raise RefusedError(401, "bad_secret", f"missing or wrong {BOT_SECRET_HEADER}")
        raw, payload = decode_json(body)
        record = _describe(describe_bot_event, payload)
    except RefusedError as refused:
        log.info("zalo_bot_event_refused", status=refused.response.status)
        return refused.response
    return await _accept(request, record, raw)


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


@routes.post("/webhooks/zalo/oa")
async def zalo_oa_webhook(request: web.Request) -> web.Response:
    """OA and ZNS events, authenticated by X-ZEvent-Signature over app id, body and timestamp."""
    settings = request.app[CONTEXT].settings
    try:
        if not settings.ZALO_OA_APP_ID or not oa_signature_key(settings):
            raise RefusedError(503, "not_configured", "the Zalo OA app id or signing key is not set")
        body = await _read_limited(request)
        header = request.headers.get(OA_SIGNATURE_HEADER)
        if not header:
            raise RefusedError(401, "bad_signature", f"missing {OA_SIGNATURE_HEADER}")
        raw, payload = decode_json(body)
        _check_oa_event(settings, header, raw, payload)
        record = _describe(describe_oa_event, payload)
    except RefusedError as refused:
        log.info("zalo_oa_event_refused", status=refused.response.status)
        return refused.response
    return await _accept(request, record, raw)
