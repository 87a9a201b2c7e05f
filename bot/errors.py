"""The one JSON error shape every route answers with, and the middleware that enforces it."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

log = structlog.get_logger(__name__)

# 1 MiB: a batch of 1,000 cases fits; anything larger is refused with 413.
MAX_BODY_BYTES = 1024 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_REASONS = {413: "payload_too_large", 404: "not_found", 405: "method_not_allowed"}


def error_response(status: int, error: str, message: str, **extra: object) -> web.Response:
    """`{"error": <code>, "message": <human text>, ...}` with `status`."""
    return web.json_response({"error": error, "message": message, **extra}, status=status)


class RefusedError(Exception):
    """A request refused by a check, with the error answer it gets. Checks raise it from any
    depth; json_errors answers it (handlers that log refusals catch it themselves)."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.error = error
        self.response = error_response(status, error, message)


def dumps(data: object) -> str:
    """JSON for responses: Vietnamese text stays readable."""
    return json.dumps(data, ensure_ascii=False)


async def plain_server_header(_request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: aiohttp would send `Server: Python/3.x aiohttp/3.x`, and versions
    help only an attacker."""
    response.headers["Server"] = "sipas-bot"


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A RefusedError is answered with its response; aiohttp's plain-text errors (404, 405, 413)
    and unexpected failures become JSON errors. An unexpected failure is logged with its
    traceback and answered 500 without details."""
    try:
        return await handler(request)
    except RefusedError as refused:
        return refused.response
    except web.HTTPException as exc:
        if exc.content_type == "application/json" or exc.status < 400:
            raise
        return error_response(exc.status, _REASONS.get(exc.status, "http_error"), exc.reason)
    except Exception:
        log.exception("unhandled error", method=request.method, path=request.path)
        return error_response(500, "internal_error", "the service failed to handle this request; retry later")
