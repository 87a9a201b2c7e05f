"""Prometheus metrics: request counts and latencies, exposed on /metrics."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

from bot.errors import RefusedError

REQUESTS = Counter("sipas_http_requests_total", "HTTP requests", ["route", "status"])
LATENCY = Histogram("sipas_http_request_seconds", "HTTP request latency", ["route"])

routes = web.RouteTableDef()


@routes.get("/metrics")
async def metrics_view(_request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


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
