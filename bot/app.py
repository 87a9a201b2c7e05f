"""The aiohttp application factory: one place that wires routes, middlewares and context."""

from __future__ import annotations

from aiohttp import web

from bot import api_scores, health, intake, metrics
from bot.channels import registry
from bot.context import CONTEXT, AppContext
from bot.errors import MAX_BODY_BYTES, json_errors, plain_server_header
from bot.web import setup as setup_pages

# Every module that serves routes (each channel provider's webhooks from bot.channels.registry);
# docs/openapi.yaml documents exactly these (tests/test_openapi.py).
ROUTE_MODULES = (health, metrics, intake, *registry.ROUTE_MODULES, api_scores)


def create_app(context: AppContext) -> web.Application:
    """Build the app around a ready context (settings, database, Redis, job dispatcher)."""
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[json_errors, metrics.middleware])
    app[CONTEXT] = context
    for module in ROUTE_MODULES:
        app.add_routes(module.routes)
    setup_pages(app)  # HTML pages for staff and supervisors (bot/web), listed in docs/pages.md
    metrics.serve_on_private_port(app, context.settings)
    app.on_response_prepare.append(plain_server_header)
    return app
