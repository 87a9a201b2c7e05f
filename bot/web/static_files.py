"""The pages' own CSS, scripts and images from bot/web/static: a fixed list, read once, no
directory walking (a name not in the folder is a 404)."""

from __future__ import annotations

import mimetypes
from functools import lru_cache

from aiohttp import web

from bot.web.access import public
from bot.web.render import STATIC

routes = web.RouteTableDef()


@lru_cache(maxsize=1)
def _files() -> dict[str, tuple[bytes, str]]:
    found = {}
    for path in STATIC.iterdir():
        if path.is_file() and not path.name.startswith("."):
            kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            found[path.name] = (path.read_bytes(), kind)
    return found


@routes.get("/static/{name}")
@public("style sheets, scripts and images of the pages; nothing private")
async def static_file(request: web.Request) -> web.Response:
    entry = _files().get(request.match_info["name"])
    if entry is None:
        return web.Response(status=404, text="not found")
    body, kind = entry
    charset = "utf-8" if kind.startswith("text/") or kind.endswith("javascript") else None
    return web.Response(
        body=body,
        content_type=kind,
        charset=charset,
        headers={"Cache-Control": "public, max-age=86400"},
    )
