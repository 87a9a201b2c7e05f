"""Server-rendered pages: one Jinja2 environment (autoescaped: citizens' words are untrusted) and
the context every page gets (account, language, CSRF token, navigation).

A page handler:

    return render(request, "inbox.html", title=_("Hộp thư"), messages=rows)

and its template starts with `{% extends "base.html" %}` and fills `{% block content %}`.
Forms include `{{ csrf_field() }}`. Links keep the language by themselves (it is remembered in a
cookie once chosen). No inline scripts or styles: the CSP forbids them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from bot.web.access import ROLE_NAMES, access_of
from bot.web.i18n import LANG, translator
from bot.web.sessions import CSRF_FIELD, SESSION, optional_viewer
from flows.scores.render import format_number

__all__ = ["NAVIGATION", "compile_templates", "error_page", "render", "static_url"]

_HERE = Path(__file__).parent
TEMPLATES = _HERE / "templates"
STATIC = _HERE / "static"

# The menu, in order: a page appears once its route exists and the account's role may open it.
NAVIGATION: Sequence[tuple[str, str]] = (
    ("/", "Tổng quan"),
    ("/agencies", "Đơn vị"),
    ("/flows", "Kịch bản khảo sát"),
    ("/inbox", "Hộp thư"),
    ("/audit", "Nhật ký thay đổi"),
    ("/users", "Tài khoản"),
    ("/simulator", "Giả lập điện thoại"),
)


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "svg"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["static_url"] = static_url
    env.globals["role_names"] = {role.value: name for role, name in ROLE_NAMES.items()}
    env.filters["number"] = format_number
    return env


def compile_templates() -> int:
    """Compile every page template now (at start) rather than on its first request: the first
    dashboard of a fresh process spent 50-150 ms compiling dashboard.html. Returns how many."""
    env = environment()
    names = [name for name in env.list_templates() if name.endswith(".html")]
    for name in names:
        env.get_template(name)
    return len(names)


@lru_cache(maxsize=64)
def _static_version(name: str) -> str:
    return hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:10]


def static_url(name: str) -> str:
    """/static/<name>?v=<content hash>: cached long by browsers, refreshed when the file changes."""
    return f"/static/{name}?v={_static_version(name)}"


@dataclass(frozen=True)
class NavItem:
    path: str
    label: str
    current: bool


def _navigation(request: web.Request) -> list[NavItem]:
    viewer = optional_viewer(request)
    if viewer is None:
        return []
    allowed: dict[str, bool] = {}
    for route in request.app.router.routes():
        if route.method != "GET" or route.resource is None:
            continue
        path = route.resource.canonical
        access = access_of(route.handler)
        if access is not None and not access.is_public:
            allowed[path] = viewer.role in access.roles
    _ = translator(request[LANG])
    items = []
    for path, label in NAVIGATION:
        if allowed.get(path):
            current = request.path == path or (path != "/" and request.path.startswith(path + "/"))
            items.append(NavItem(path, _(label), current))
    return items


def _with_query(request: web.Request, **changes: str | None) -> str:
    """The current URL with some query parameters changed (None removes one)."""
    query = {k: v for k, v in request.query.items() if k not in changes}
    query.update({k: v for k, v in changes.items() if v is not None})
    return request.path + ("?" + urlencode(query) if query else "")


def render(request: web.Request, template: str, *, status: int = 200, **context: Any) -> web.Response:
    """Render `template` with the page context; `title` is expected by base.html."""
    lang = request[LANG]
    state = request.get(SESSION)
    csrf = state.csrf if state is not None else ""

    def csrf_field() -> Markup:
        return Markup('<input type="hidden" name="{}" value="{}">').format(CSRF_FIELD, escape(csrf))

    page = environment().get_template(template)
    html = page.render(
        _=translator(lang),
        lang=lang,
        viewer=optional_viewer(request),
        navigation=_navigation(request),
        csrf_token=csrf,
        csrf_field=csrf_field,
        with_query=lambda **changes: _with_query(request, **changes),
        number=lambda value, digits=2: format_number(value, digits, lang),
        request_path=request.path,
        **context,
    )
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


def error_page(request: web.Request, status: int, message: str) -> web.Response:
    """A page for a refusal (403, 404...): the message is Vietnamese text from the catalogue."""
    _ = translator(request[LANG])
    return render(request, "error.html", status=status, title=_("Không thực hiện được"), message=_(message))
