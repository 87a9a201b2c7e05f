"""Prometheus metrics: request counts and latencies, exposed on /metrics.

Metrics are not for the public the webhooks face: on the web port /metrics answers only
`Authorization: Bearer <SIPAS_METRICS_TOKEN>` (404 when no token is set), and with
SIPAS_METRICS_PORT the web process also serves them, token-free, on a private address.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

from bot.context import CONTEXT
from bot.errors import RefusedError, plain_server_header
from config.settings import Settings

REQUESTS = Counter("sipas_http_requests_total", "HTTP requests", ["route", "status"])
LATENCY = Histogram("sipas_http_request_seconds", "HTTP request latency", ["route"])

routes = web.RouteTableDef()


def _exposition() -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def _check_bearer(header: str, token: str) -> None:
    if not token:
        raise RefusedError(404, "not_found", "metrics are not served on this port (see SIPAS_METRICS_PORT)")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise RefusedError(401, "missing_token", "send Authorization: Bearer <SIPAS_METRICS_TOKEN>")
    if not hmac.compare_digest(given.strip().encode("utf-8", "surrogateescape"), token.encode("utf-8")):
        raise RefusedError(403, "bad_token", "the metrics token is not valid")


@routes.get("/metrics")
async def metrics_view(request: web.Request) -> web.Response:
    """Prometheus exposition, for the holder of SIPAS_METRICS_TOKEN only."""
    _check_bearer(request.headers.get("Authorization", ""), request.app[CONTEXT].settings.SIPAS_METRICS_TOKEN)
    return _exposition()


def serve_on_private_port(app: web.Application, settings: Settings) -> None:
    """With SIPAS_METRICS_PORT set, serve token-free /metrics on SIPAS_METRICS_HOST:PORT for as long
    as `app` runs (a second listener of the same process, so the figures are the same)."""
    if not settings.SIPAS_METRICS_PORT:
        return

    async def private_listener(_app: web.Application) -> AsyncIterator[None]:
        private = web.Application()
        private.on_response_prepare.append(plain_server_header)
        private.router.add_get("/metrics", _private_metrics)
        runner = web.AppRunner(private, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, settings.SIPAS_METRICS_HOST, settings.SIPAS_METRICS_PORT).start()
        yield
        await runner.cleanup()

    app.cleanup_ctx.append(private_listener)


async def _private_metrics(_request: web.Request) -> web.Response:
    return _exposition()


@web.middleware
async def middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Label by route pattern, not by raw path, so tokens in URLs never become label values."""
    route = request.match_info.route.resource
    name = route.canonical if route is not None else "unmatched"
    start = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except RefusedError as refused:  # answered by bot.errors.json_errors, further out
        status = refused.response.status
        raise
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        REQUESTS.labels(name, str(status)).inc()
        LATENCY.labels(name).observe(time.perf_counter() - start)
