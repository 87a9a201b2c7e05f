"""`POST /api/v1/cases/closed`: the one-stop system tells us a case closed.

Only the one-stop system may start a survey (sipas-method.md, integrity of the data), so every
request is authenticated before its body is even parsed: a timestamped HMAC-SHA256 signature
over the raw bytes. The timestamp window (±300 s) bounds replay of a captured request; within
it, a replay is harmless because the intake is idempotent on case_id (a resent case is a
`duplicate` and never creates a second survey).

A verified body is parsed and stored in a small thread pool of its own, not on the event loop
and not in the default executor the other webhooks use: a batch of 1,000 is mostly CPU in Python
(validation, phone checks, encryption) plus a handful of set-based queries (flows.intake). On the
loop, or with an async driver (whose CPU work runs on the loop just the same), that CPU would
hold every other request for the whole batch; in a thread the interpreter hands the loop its turn
every few milliseconds, and a pool of two keeps bursts of batches from taking the threads and
database connections the SMS and Zalo webhooks need.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import structlog
from aiohttp import web
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from bot.bodies import MAX_JSON_DEPTH, nesting_exceeds
from bot.context import CONTEXT, AppContext
from bot.errors import MAX_BODY_BYTES, RefusedError, dumps, error_response
from flows.intake import Outcome, OutcomeKind, count_outcomes, submit_cases

__all__ = [
    "MAX_BATCH",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "TIMESTAMP_TOLERANCE",
    "routes",
    "sign",
]

log = structlog.get_logger(__name__)
routes = web.RouteTableDef()

TIMESTAMP_HEADER = "X-Sipas-Timestamp"
SIGNATURE_HEADER = "X-Sipas-Signature"
TIMESTAMP_TOLERANCE = 300  # seconds, either direction
MAX_BATCH = 1000
# Batches stored at once per web process (module docstring): more would not go faster on the GIL.
_INTAKE_THREADS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="intake")


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """The `X-Sipas-Signature` value for `body` sent at `timestamp` (what the one-stop system computes)."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode("ascii") + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def _timestamp(request: web.Request, now: float) -> str:
    """The signed timestamp header, checked for form and freshness (before reading the body)."""
    raw = request.headers.get(TIMESTAMP_HEADER)
    if raw is None or request.headers.get(SIGNATURE_HEADER) is None:
        raise RefusedError(
            401, "missing_signature", f"both {TIMESTAMP_HEADER} and {SIGNATURE_HEADER} headers are required"
        )
    text = raw.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 12:
        raise RefusedError(401, "invalid_timestamp", f"{TIMESTAMP_HEADER} must be Unix time in whole seconds")
    if abs(int(text) - now) > TIMESTAMP_TOLERANCE:
        raise RefusedError(
            401,
            "stale_timestamp",
            f"{TIMESTAMP_HEADER} is more than {TIMESTAMP_TOLERANCE} s away from our clock; "
            "sign each request when you send it (and keep the clock synchronised)",
        )
    return text


def _check_signature(secret: str, timestamp: str, header: str, body: bytes) -> None:
    """Accept when any `v1=` value in the header matches: a sender rotating its secret may send two."""
    expected = sign(secret, timestamp, body).encode("ascii")
    candidates = [part.strip().lower() for part in header.split(",") if part.strip()]
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(candidate.encode("ascii", "replace"), expected)
    if not matched:
        raise RefusedError(
            401,
            "invalid_signature",
            f'{SIGNATURE_HEADER} does not match: expected v1=hex(HMAC-SHA256(secret, "<timestamp>." + body))',
        )


def _cases(body: bytes) -> list[Any]:
    """The list of case objects in a verified body: one object, or {"cases": [...]}."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RefusedError(400, "invalid_encoding", "the body must be UTF-8 encoded JSON") from None
    if nesting_exceeds(text, MAX_JSON_DEPTH):
        raise RefusedError(400, "too_deep", f"the JSON may nest at most {MAX_JSON_DEPTH} levels")
    try:
        document = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise RefusedError(400, "malformed_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise RefusedError(400, "invalid_body", 'expected one case object or {"cases": [...]}')
    if "cases" not in document:
        return [document]
    cases = document["cases"]
    if not isinstance(cases, list):
        raise RefusedError(400, "invalid_body", '"cases" must be a list of case objects')
    if not cases:
        raise RefusedError(400, "empty_batch", '"cases" is empty: send 1 to 1000 cases')
    if len(cases) > MAX_BATCH:
        raise RefusedError(
            413, "batch_too_large", f"{len(cases)} cases in one request; send at most {MAX_BATCH} per request"
        )
    return cases


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _submit(ctx: AppContext, body: bytes) -> list[Outcome]:
    """Parse the verified body and store all its cases in one transaction (flows.intake): the
    response is sent only after the commit, so an acknowledged case is stored. A batch that
    opened surveys then wakes the timer drain: a first message due at once goes out without
    waiting up to SIPAS_SWEEP_INTERVAL for the cron sweep."""
    cases = _cases(body)
    now = datetime.now(UTC)
    with ctx.sessions() as session, session.begin():
        outcomes = submit_cases(session, ctx.vault, ctx.settings, cases, now)
    if any(outcome.outcome is OutcomeKind.SCHEDULED for outcome in outcomes):
        try:
            ctx.dispatcher.surveys_scheduled()
        except Exception as exc:  # stored and committed: the sweep fires the timers when due
            log.warning("timer wake-up failed; left for the sweep", error=type(exc).__name__)
    return outcomes


@routes.post("/api/v1/cases/closed")
async def cases_closed(request: web.Request) -> web.Response:
    """Accept one closed case or a batch; 202 with one result per case, in the order sent."""
    ctx = request.app[CONTEXT]
    secret = ctx.settings.ONESTOP_WEBHOOK_SECRET
    if not secret:
        # An empty key would let anyone compute a valid signature: refuse instead.
        return error_response(503, "not_configured", "ONESTOP_WEBHOOK_SECRET is not set on this server")
    try:
        timestamp = _timestamp(request, time.time())
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise RefusedError(
                413,
                "payload_too_large",
                f"the body is larger than {MAX_BODY_BYTES} bytes; send at most {MAX_BATCH} cases per request",
            ) from None
        _check_signature(secret, timestamp, request.headers[SIGNATURE_HEADER], body)
        loop = asyncio.get_running_loop()
        outcomes = await loop.run_in_executor(_INTAKE_THREADS, _submit, ctx, body)
    except RefusedError as refused:
        log.info("intake_refused", error=refused.error, status=refused.response.status)
        return refused.response
    except (OperationalError, InterfaceError, PoolTimeoutError) as exc:
        # The database is unreachable or failing: nothing of the request was stored.
        log.warning("intake_storage_unavailable", error=type(getattr(exc, "orig", None) or exc).__name__)
        return error_response(
            503, "storage_unavailable", "the cases could not be stored; nothing was kept, send them again"
        )
    log.info("cases_received", total=len(outcomes), **count_outcomes(outcomes))
    return web.json_response(
        {"results": [outcome.as_json() for outcome in outcomes]}, status=202, dumps=dumps
    )
