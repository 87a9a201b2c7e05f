"""The aiohttp application factory: one place that wires routes, middlewares and context."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from bot import health, metrics
from bot.context import CONTEXT, AppContext

log = structlog.get_logger(__name__)

MAX_BODY_BYTES = 1024 * 1024  # 1 MiB: a batch of 1,000 cases fits; anything larger is refused with 413.

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(status: int, error: str, message: str, **extra: object) -> web.Response:
    """Every error the service answers has this JSON shape."""
    return web.json_response({"error": error, "message": message, **extra}, status=status)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn aiohttp's plain-text HTTP errors (404, 405, 413) into the service's JSON errors."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.content_type == "application/json" or exc.status < 400:
            raise
        reason = {413: "payload_too_large", 404: "not_found", 405: "method_not_allowed"}.get(
            exc.status, "http_error"
        )
        return error_response(exc.status, reason, exc.reason)


def create_app(context: AppContext) -> web.Application:
    """Build the app around a ready context (settings, database, Redis, job dispatcher)."""
    from bot.intake import routes as intake_routes
    from bot.webhooks.kannel import routes as kannel_routes
    from bot.webhooks.zalo import routes as zalo_routes

    app = web.Application(
        client_max_size=MAX_BODY_BYTES,
        middlewares=[json_errors, metrics.middleware],
    )
    app[CONTEXT] = context
    for table in (health.routes, metrics.routes, intake_routes, kannel_routes, zalo_routes):
        app.add_routes(table)
    return app


def dumps(data: object) -> str:
    """JSON for responses: Vietnamese text stays readable."""
    return json.dumps(data, ensure_ascii=False)
