"""The brandname API's callbacks: `POST /webhooks/sms/brandname/mo` and `.../brandname/status`.

Each is a JSON object signed with BRANDNAME_CALLBACK_SECRET (parse.verify). Refused before
anything is stored, with a JSON error: the secret unset (503 not_configured), a body over 16 KiB
(413), a missing, wrong or stale signature (401), a body that is not a UTF-8 JSON object or lacks
what we need (400). An accepted callback is stored through bot.channels.intake (the MO, then
the wake-up of the inbound drain; the status, applied to its outbox row at once) and answered
200 `{"result": ...}`; a repeated id answers 200 "duplicate" without being processed twice.
"""

from __future__ import annotations

import time

import structlog
from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from bot.bodies import decode_json, read_limited
from bot.channels.brandname.parse import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    parse_inbound,
    parse_status,
    verify,
)
from bot.channels.brandname.send import STATUS_PATH
from bot.channels.intake import storage_unavailable, store_and_settle, store_and_wake
from bot.channels.sms import InboundRequestError
from bot.context import CONTEXT
from bot.errors import RefusedError, error_response

__all__ = ["MAX_BODY_BYTES", "MO_PATH", "PROVIDER", "STATUS_PATH", "routes"]

log = structlog.get_logger(__name__)

routes = web.RouteTableDef()

PROVIDER = "brandname"
MO_PATH = "/webhooks/sms/brandname/mo"
MAX_BODY_BYTES = 16 * 1024
_AUTH_ERRORS = frozenset({"missing_signature", "bad_signature", "stale_signature"})


async def _signed_json(request: web.Request) -> tuple[str, object]:
    """The verified body as (text, value); RefusedError or InboundRequestError otherwise."""
    secret = request.app[CONTEXT].settings.BRANDNAME_CALLBACK_SECRET
    if not secret:
        raise RefusedError(503, "not_configured", "BRANDNAME_CALLBACK_SECRET is not set on this server")
    too_large = RefusedError(413, "payload_too_large", f"callbacks are at most {MAX_BODY_BYTES} bytes")
    body = await read_limited(request, MAX_BODY_BYTES, too_large)
    verify(
        secret,
        request.headers.get(TIMESTAMP_HEADER),
        request.headers.get(SIGNATURE_HEADER),
        body,
        time.time(),
    )
    return decode_json(body)


def _refusal(exc: InboundRequestError) -> web.Response:
    status = 401 if exc.error in _AUTH_ERRORS else 400
    log.info("brandname callback refused", status=status, error=exc.error)
    return error_response(status, exc.error, exc.message)


@routes.post(MO_PATH)
async def receive_mo(request: web.Request) -> web.StreamResponse:
    """A citizen's SMS to our two-way number, forwarded by the provider."""
    try:
        raw, payload = await _signed_json(request)
        sms = parse_inbound(payload)
    except InboundRequestError as exc:
        return _refusal(exc)
    try:
        stored = await store_and_wake(
            request.app[CONTEXT], provider=PROVIDER, kind="mo", provider_id=sms.provider_id, payload=raw,
            sender=sms.sender,
        )  # fmt: skip
    except SQLAlchemyError as exc:
        return storage_unavailable(PROVIDER, exc)
    return web.json_response({"result": "duplicate" if stored.duplicate else "stored"})


@routes.post(STATUS_PATH)
async def receive_status(request: web.Request) -> web.StreamResponse:
    """A delivery status of a message we sent (its `ref` is our outbox id)."""
    try:
        raw, payload = await _signed_json(request)
        report = parse_status(payload)
    except InboundRequestError as exc:
        return _refusal(exc)
    try:
        result = await store_and_settle(request.app[CONTEXT], provider=PROVIDER, report=report, payload=raw)
    except SQLAlchemyError as exc:
        return storage_unavailable(PROVIDER, exc)
    return web.json_response({"result": result})
