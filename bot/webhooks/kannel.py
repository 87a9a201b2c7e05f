"""Kannel's callbacks: `GET/POST /webhooks/sms/kannel` (MO) and `.../kannel/dlr` (delivery reports).

Kannel's smsbox resends the identical request (same `id`) while we answer anything but 200/202
(`http-request-retry`), so: an accepted MO is committed before we answer 200, and an MO id seen
before answers 200 again without being stored or processed twice. Errors are JSON, and a request
we can never accept (forged, malformed) gets a 4xx: Kannel retries it a bounded number of times
and gives up. A database outage answers 503, so Kannel keeps the MO and tries again.

MO: stored raw (parameters minus the token, encrypted: they hold the sender's number) with the
keyed hash of the normalised sender, then handed to the workers. DLR: stored raw and applied to
the outbox row in the same transaction (nothing to queue); a report for an unknown message is
stored with result "unknown message" and answered 200, since retrying cannot make it known.
Both answer 200 with no SMS text: the sms-service runs with `max-messages = 0`, so a body would
not be sent anyway.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from datetime import UTC, datetime
from urllib.parse import parse_qsl

import structlog
from aiohttp import hdrs, web
from sqlalchemy.exc import SQLAlchemyError

from bot.bodies import has_unstorable, read_limited
from bot.channels.kannel import KannelGateway, dlr_token
from bot.channels.sms import DeliveryReport, InboundRequestError
from bot.context import CONTEXT, AppContext
from bot.errors import RefusedError, error_response
from storage import inbound, outbox
from storage.models import InboundEvent

log = structlog.get_logger(__name__)

routes = web.RouteTableDef()

MO_PATH = "/webhooks/sms/kannel"
DLR_PATH = "/webhooks/sms/kannel/dlr"
# Query string or form body. A 10-part fully accented Vietnamese SMS is about 6 KB URL-encoded;
# aiohttp refuses request lines over 8 KB on its own, so ours is the limit a client meets first.
MAX_PARAMS_BYTES = 7 * 1024
MAX_FIELDS = 32
_MAX_OUTBOX_ID = 2**31 - 1  # larger refs cannot be one of our rows (and overflow an INTEGER key)
_FORM = "application/x-www-form-urlencoded"


async def _read_params(request: web.Request) -> dict[str, str]:
    """Query parameters, plus the form body of a POST, decoded strictly as UTF-8 (first value wins)."""
    too_large = RefusedError(
        413, "payload_too_large", f"Kannel callbacks are at most {MAX_PARAMS_BYTES} bytes"
    )
    raw_query = request.raw_path.partition("?")[2]
    if len(raw_query) > MAX_PARAMS_BYTES:
        raise too_large
    sources = [raw_query]
    if request.method == "POST":
        body = await read_limited(request, MAX_PARAMS_BYTES, too_large)
        if body:
            if hdrs.CONTENT_TYPE in request.headers and request.content_type != _FORM:
                raise RefusedError(
                    415, "unsupported_media_type", f"send parameters in the query or as {_FORM}"
                )
            try:
                sources.append(body.decode("ascii"))
            except UnicodeDecodeError:
                raise RefusedError(400, "bad_encoding", "a form body must be percent-encoded ASCII") from None
    params: dict[str, str] = {}
    for source in sources:
        try:
            pairs = parse_qsl(
                source, keep_blank_values=True, encoding="utf-8", errors="strict", max_num_fields=MAX_FIELDS
            )
        except UnicodeDecodeError:
            raise RefusedError(
                400, "bad_encoding", "parameters must be UTF-8 (set mo-recode = true)"
            ) from None
        except ValueError:
            raise RefusedError(400, "too_many_fields", f"at most {MAX_FIELDS} parameters") from None
        for key, value in pairs:
            params.setdefault(key, value)
    # NUL cannot be stored in PostgreSQL text (ids, timestamps); only the SMS text may carry one
    # (GSM '@' mis-decoded) and parse_inbound strips it there.
    if any(has_unstorable(key) or (key != "text" and has_unstorable(value)) for key, value in params.items()):
        raise RefusedError(400, "bad_characters", "parameters other than text must not contain NUL")
    return params


def _check_token(given: str | None, expected: str) -> None:
    """Constant-time comparison; an unset secret refuses everything instead of accepting ''."""
    if not expected:
        raise RefusedError(503, "not_configured", "KANNEL_MO_TOKEN is not set on this server")
    if not given:
        raise RefusedError(401, "missing_token", "the token parameter is required")
    if not hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8")):
        raise RefusedError(403, "bad_token", "the token is not valid")


def _payload_enc(ctx: AppContext, params: dict[str, str]) -> str:
    """The callback as stored: its parameters minus the token, encrypted (they hold a number)."""
    payload = {key: value for key, value in params.items() if key != "token"}
    return ctx.vault.encrypt(json.dumps(payload, ensure_ascii=False))


def _storage_unavailable(exc: SQLAlchemyError) -> web.Response:
    log.error("kannel callback not stored", error=type(exc).__name__)
    return error_response(503, "storage_unavailable", "cannot store the request now; retry later")


@routes.get(MO_PATH)
@routes.post(MO_PATH)
async def receive_mo(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    try:
        params = await _read_params(request)
        _check_token(params.get("token"), ctx.settings.KANNEL_MO_TOKEN)
        sms = KannelGateway.parse_inbound(params)
    except InboundRequestError as exc:
        return error_response(400, exc.error, exc.message)
    payload_enc = _payload_enc(ctx, params)
    sender_hash = ctx.vault.lookup_hash(sms.sender)
    try:
        stored = await asyncio.to_thread(_store_mo, ctx, sms.provider_id, payload_enc, sender_hash)
    except SQLAlchemyError as exc:
        return _storage_unavailable(exc)
    log.info("kannel mo stored", event_id=stored.event_id, duplicate=stored.duplicate)
    if not stored.duplicate:
        try:
            await asyncio.to_thread(ctx.dispatcher.inbound_received, stored.event_id)
        except Exception:
            # Stored and committed: the sweep of unprocessed events picks it up, so Kannel still gets 200.
            log.exception("kannel mo not dispatched; left for the sweep", event_id=stored.event_id)
    return web.Response(status=200)


def _store_mo(ctx: AppContext, provider_id: str, payload_enc: str, sender_hash: str) -> inbound.Stored:
    with ctx.sessions() as session, session.begin():
        return inbound.store_event(
            session,
            provider="kannel",
            kind="mo",
            provider_id=provider_id,
            payload_enc=payload_enc,
            sender_hash=sender_hash,
        )


@routes.get(DLR_PATH)
@routes.post(DLR_PATH)
async def receive_dlr(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    try:
        params = await _read_params(request)
        if not params.get("token"):
            raise RefusedError(401, "missing_token", "the token parameter is required")
        report = KannelGateway.parse_delivery_report(params)
        _check_token(params.get("token"), _expected_dlr_token(ctx, report.ref))
    except InboundRequestError as exc:
        return error_response(400, exc.error, exc.message)
    provider_id = f"{report.ref}:{report.code}:{params.get('ts', '').strip()}"[:128]
    payload_enc = _payload_enc(ctx, params)
    try:
        result = await asyncio.to_thread(_store_and_apply_dlr, ctx, report, provider_id, payload_enc)
    except SQLAlchemyError as exc:
        return _storage_unavailable(exc)
    log.info("kannel dlr", ref=report.ref, code=report.code, result=result)
    return web.json_response({"result": result})


def _expected_dlr_token(ctx: AppContext, ref: str) -> str:
    return dlr_token(ctx.settings.KANNEL_MO_TOKEN, ref) if ctx.settings.KANNEL_MO_TOKEN else ""


def _store_and_apply_dlr(ctx: AppContext, report: DeliveryReport, provider_id: str, payload_enc: str) -> str:
    now = datetime.now(UTC)
    with ctx.sessions() as session, session.begin():
        stored = inbound.store_event(
            session,
            provider="kannel",
            kind="dlr",
            provider_id=provider_id,
            payload_enc=payload_enc,
            sender_hash=None,
        )
        if stored.duplicate:
            return "duplicate"
        message_id = int(report.ref) if report.ref.isdigit() else 0
        known = 0 < message_id <= _MAX_OUTBOX_ID and outbox.apply_delivery_report(
            session, message_id, report.code, now
        )
        result = f"applied {report.status}" if known else "unknown message"
        event = session.get(InboundEvent, stored.event_id)
        assert event is not None
        event.attempts += 1
        event.processed_at = now
        event.result = result
        return result
