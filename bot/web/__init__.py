"""The pages for supervisors, staff and admins, served by the same aiohttp app as the webhooks.

Adding a page area: write a module here with `routes = web.RouteTableDef()`, mark every handler
with `@require_role(...)` or `@public(reason)` (bot.web.access), render with
`bot.web.render.render(request, "x.html", title=...)` from a template that extends base.html,
and add the module to PAGE_MODULES. The menu shows it by itself when its path is in
render.NAVIGATION; tests/web/test_routes.py checks the access of every route, and docs/pages.md
must list the page (checked there too).
"""

from __future__ import annotations

from types import ModuleType

from aiohttp import web

from bot.context import CONTEXT
from bot.web import (
    agencies,
    audit_log,
    dashboard,
    flows,
    inbox,
    login,
    security,
    sessions,
    simulator,
    static_files,
    users,
)

# Every module that serves pages; the simulator only under SIPAS_ENV=development.
PAGE_MODULES: tuple[ModuleType, ...] = (
    static_files,
    login,
    dashboard,
    users,
    audit_log,
    agencies,
    flows,
    inbox,
)
DEVELOPMENT_MODULES: tuple[ModuleType, ...] = (simulator,)


def setup(app: web.Application) -> None:
    """Add the pages, their guard and the security headers to the app (bot.app.create_app)."""
    app.middlewares.append(sessions.guard)
    app.on_response_prepare.append(security.add_security_headers)
    app[dashboard.REPORTS] = dashboard.ReportCache()
    app.cleanup_ctx.append(dashboard.warm_up)
    modules = PAGE_MODULES
    if app[CONTEXT].settings.SIPAS_ENV == "development":
        modules = (*modules, *DEVELOPMENT_MODULES)
    for module in modules:
        app.add_routes(module.routes)
