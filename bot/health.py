"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio

from aiohttp import web

from bot.context import CONTEXT, AppContext
from storage.models import ReadinessProbe

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(_request: web.Request) -> web.Response:
    """The process is up and serving."""
    return web.json_response({"status": "ok"})


def _check_database(ctx: AppContext) -> None:
    """A write, rolled back: a database that answers reads but refuses writes (read-only, a
    standby, a full disk) cannot store what the webhooks accept, so it is not ready."""
    with ctx.sessions() as session:
        try:
            session.add(ReadinessProbe())
            session.flush()
        finally:
            session.rollback()


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Ready only when the database takes a write and Redis answers: 503 names what is down."""
    ctx = request.app[CONTEXT]
    checks: dict[str, str] = {}
    for name, probe in (("database", lambda: _check_database(ctx)), ("redis", ctx.redis.ping)):
        try:
            await asyncio.wait_for(asyncio.to_thread(probe), timeout=3)
            checks[name] = "ok"
        except Exception as exc:  # any failure means not ready; the reason is reported
            checks[name] = f"error: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return web.json_response(
        {"status": "ok" if ready else "unavailable", **checks}, status=200 if ready else 503
    )
