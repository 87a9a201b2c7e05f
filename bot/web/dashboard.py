"""/ : the dashboard of the account's subtree (filled in by the supervisor pages)."""

from __future__ import annotations

from aiohttp import web

from bot.web.access import ANYONE, require_role
from bot.web.i18n import LANG, translator
from bot.web.render import render

routes = web.RouteTableDef()


@routes.get("/")
@require_role(*ANYONE)
async def dashboard(request: web.Request) -> web.Response:
    _ = translator(request[LANG])
    return render(request, "error.html", title=_("Tổng quan"), message=_("Tổng quan"))
