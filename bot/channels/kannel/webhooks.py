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
not be sent anyway. Both store through bot.channels.intake, the path every channel webhook shares.
"""

from __future__ import annotations

import hmac
import json
from urllib.parse import parse_qsl

import structlog
from aiohttp import hdrs, web
from sqlalchemy.exc import SQLAlchemyError

from bot.bodies import has_unstorable, read_limited
from bot.channels.intake import storage_unavailable, store_and_settle, store_and_wake
from bot.channels.kannel.parse import parse_delivery_report, parse_inbound
from bot.channels.kannel.send import DLR_PATH, dlr_token
from bot.channels.sms import InboundRequestError
from bot.context import CONTEXT, AppContext
from bot.errors import RefusedError, error_response

log = structlog.get_logger(__name__)

routes = web.RouteTableDef()

PROVIDER = "kannel"
MO_PATH = "/webhooks/sms/kannel"
# Query string or form body. A 10-part fully accented Vietnamese SMS is about 6 KB URL-encoded;
# aiohttp refuses request lines over 8 KB on its own, so ours is the limit a client meets first.
MAX_PARAMS_BYTES = 7 * 1024
MAX_FIELDS = 32
_FORM = "application/x-www-form-urlencoded"


def _too_large() -> RefusedError:
    """Made only when a request is refused: a RefusedError renders its JSON answer when it is
    made, which cost every callback about 3 % of the web's time when it was made up front."""
    return RefusedError(413, "payload_too_large", f"Kannel callbacks are at most {MAX_PARAMS_BYTES} bytes")


async def _read_params(request: web.Request) -> dict[str, str]:
    """Query parameters, plus the form body of a POST, decoded strictly as UTF-8 (first value wins)."""
    raw_query = request.raw_path.partition("?")[2]
    if len(raw_query) > MAX_PARAMS_BYTES:
        raise _too_large()
    sources = [raw_query]
    if request.method == "POST":
        body = await read_limited(request, MAX_PARAMS_BYTES, _too_large())
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


def _payload(params: dict[str, str]) -> str:
    """The callback as stored: its parameters minus the token (encrypted by the intake path)."""
    return json.dumps({key: value for key, value in params.items() if key != "token"}, ensure_ascii=False)


@routes.get(MO_PATH)
@routes.post(MO_PATH)
async def receive_mo(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    try:
        params = await _read_params(request)
        _check_token(params.get("token"), ctx.settings.KANNEL_MO_TOKEN)
        sms = parse_inbound(params)
    except InboundRequestError as exc:
        return error_response(400, exc.error, exc.message)
    try:
        await store_and_wake(
            ctx, provider=PROVIDER, kind="mo", provider_id=sms.provider_id, payload=_payload(params),
            sender=sms.sender,
        )  # fmt: skip
    except SQLAlchemyError as exc:
        return storage_unavailable(PROVIDER, exc)
    return web.Response(status=200)


@routes.get(DLR_PATH)
@routes.post(DLR_PATH)
async def receive_dlr(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    try:
        params = await _read_params(request)
        if not params.get("token"):
            raise RefusedError(401, "missing_token", "the token parameter is required")
        report = parse_delivery_report(params)
        _check_token(params.get("token"), _expected_dlr_token(ctx, report.ref))
    except InboundRequestError as exc:
        return error_response(400, exc.error, exc.message)
    try:
        result = await store_and_settle(ctx, provider=PROVIDER, report=report, payload=_payload(params))
    except SQLAlchemyError as exc:
        return storage_unavailable(PROVIDER, exc)
    return web.json_response({"result": result})


def _expected_dlr_token(ctx: AppContext, ref: str) -> str:
    return dlr_token(ctx.settings.KANNEL_MO_TOKEN, ref) if ctx.settings.KANNEL_MO_TOKEN else ""
