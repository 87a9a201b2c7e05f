"""/audit: the audit log, newest first; admins see everything and whether the chain is intact,
staff the entries about their subtree."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web
from sqlalchemy import select

from bot.context import CONTEXT, AppContext
from bot.web.access import CONFIGURE, Viewer, require_role, viewer_of
from bot.web.i18n import LANG, translator
from bot.web.render import render
from storage.audit import BrokenRow, verify
from storage.models import Agency, AuditEntry

routes = web.RouteTableDef()
PAGE_SIZE = 100


@dataclass(frozen=True)
class Row:
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    agency: str
    before: str
    after: str


@dataclass(frozen=True)
class AuditView:
    rows: list[Row]
    older: int | None  # id to continue from, when there are older entries
    broken: BrokenRow | None
    checked: bool
    actions: list[str]  # the kinds of change in the viewer's log, offered by the filter


def _pretty(value: object) -> str:
    return "" if value is None else json.dumps(value, ensure_ascii=False, indent=1, sort_keys=True)


def _load(ctx: AppContext, viewer: Viewer, before_id: int | None, action: str | None) -> AuditView:
    with ctx.sessions() as session:
        query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(PAGE_SIZE + 1)
        if viewer.scope is not None:
            query = query.where(AuditEntry.agency_id.in_(viewer.scope))
        if before_id is not None:
            query = query.where(AuditEntry.id < before_id)
        if action:
            query = query.where(AuditEntry.action == action)
        entries = session.scalars(query).all()
        codes = {a.id: a.code for a in session.scalars(select(Agency))}
        rows = [
            Row(
                id=e.id,
                at=e.at.astimezone(ctx.settings.tz),
                actor=e.actor,
                action=e.action,
                target=e.target,
                agency=codes.get(e.agency_id, "") if e.agency_id is not None else "",
                before=_pretty(e.before),
                after=_pretty(e.after),
            )
            for e in entries[:PAGE_SIZE]
        ]
        kinds = select(AuditEntry.action).distinct().order_by(AuditEntry.action)
        if viewer.scope is not None:
            kinds = kinds.where(AuditEntry.agency_id.in_(viewer.scope))
        actions = list(session.scalars(kinds))
        checked = viewer.is_admin
        broken = verify(session) if checked else None
    older = rows[-1].id if len(entries) > PAGE_SIZE else None
    return AuditView(rows, older, broken, checked, actions)


@routes.get("/audit")
@require_role(*CONFIGURE)
async def audit_page(request: web.Request) -> web.Response:
    _ = translator(request[LANG])
    raw_before = request.query.get("before", "")
    before_id = int(raw_before) if raw_before.isdigit() and len(raw_before) < 12 else None
    action = request.query.get("action", "")[:64] or None
    view = await asyncio.to_thread(_load, request.app[CONTEXT], viewer_of(request), before_id, action)
    return render(request, "audit.html", title=_("Nhật ký thay đổi"), view=view, action=action or "")
