"""/flows: survey flow versions per agency and channel, an editor that shows every problem at its
line, a "try it" panel that runs the flow as a citizen meets it (the real engine and parser), a
publish step with confirmation, and roll-back to an earlier version. Changes are audited.

The editor is one server-side form (no script): its buttons check, try or publish the text in the
text area, so what is tried is exactly what would be published.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.channels.sms import count_segments
from bot.context import CONTEXT, AppContext
from bot.web.access import CONFIGURE, Viewer, require_role, viewer_of
from bot.web.flow_messages import in_language
from bot.web.i18n import LANG, translator
from bot.web.render import error_page, render
from bot.web.sessions import redirect
from flows.definition import LANGUAGES, FlowError
from flows.loading import FlowReport, LineIssue, check_source, shipped_names, shipped_path
from flows.simulate import SAMPLE_VALUES, simulate
from flows.versions import SHIPPED_BY, publish
from storage import audit
from storage.agencies import get_by_code
from storage.flows import all_versions, assign, find_version, live_assignment, live_assignments
from storage.models import Agency, Channel

routes = web.RouteTableDef()
MAX_SOURCE = 200_000
MAX_REPLIES = 30


@dataclass(frozen=True)
class SourceLine:
    number: int
    text: str
    issues: list[str]


@dataclass(frozen=True)
class Shown:
    """One message of the try-it conversation."""

    who: str  # "bot" or "citizen"
    text: str
    length: int
    segments: int
    note: str = ""


@dataclass
class Editor:
    name: str
    source: str
    lines: list[SourceLine] = field(default_factory=list)
    general: list[str] = field(default_factory=list)
    checked: bool = False
    ok: bool = False
    conversation: list[Shown] = field(default_factory=list)
    replies: str = ""
    channel: str = "sms"
    language: str = "vi"
    scope: str = ""
    version: int | None = None  # the published version opened, when one was
    live: list[tuple[str, str]] = field(default_factory=list)  # (scope code or "", channel) using it


def _scopes(session: Session, viewer: Viewer) -> list[tuple[str, str]]:
    """Where the account may make a version live: the default (admins) and its units."""
    query = select(Agency).order_by(Agency.code)
    if viewer.scope is not None:
        query = query.where(Agency.id.in_(viewer.scope))
    units = [(a.code, f"{a.code} · {a.name}") for a in session.scalars(query)]
    return ([("", "mặc định")] if viewer.scope is None else []) + units


# -- the list ----------------------------------------------------------------------------------


def _overview(ctx: AppContext, viewer: Viewer) -> dict[str, Any]:
    with ctx.sessions() as session:
        live: list[dict[str, Any]] = [
            {
                "scope": a.agency.code if a.agency is not None else "",
                "scope_name": a.agency.name if a.agency is not None else "",
                "channel": a.channel.value,
                "name": a.flow_version.name,
                "version": a.flow_version.version,
                "since": a.assigned_at.astimezone(ctx.settings.tz),
                "by": a.assigned_by or "",
            }
            for a in live_assignments(session)
            if a.agency_id is None or viewer.sees(a.agency_id)
        ]
        live_at: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for a in live:
            live_at.setdefault((a["name"], a["version"]), []).append(a)
        versions = [
            {
                "name": v.name,
                "version": v.version,
                "at": v.published_at.astimezone(ctx.settings.tz),
                "by": v.published_by or "",
                "channels": [c for c in ("sms", "zalo") if c in _channels_of(v.definition)],
                "live": live_at.get((v.name, v.version), []),  # where new surveys use it
            }
            for v in all_versions(session)
        ]
        return {"live": live, "versions": versions, "scopes": _scopes(session, viewer)}


def _channels_of(definition: dict[str, Any]) -> list[str]:
    channels = definition.get("channels") or [definition.get("channel", "sms")]
    return [str(c) for c in channels]


@routes.get("/flows")
@require_role(*CONFIGURE)
async def flows_page(request: web.Request) -> web.Response:
    _ = translator(request[LANG])
    data = await asyncio.to_thread(_overview, request.app[CONTEXT], viewer_of(request))
    return render(
        request,
        "flows.html",
        title=_("Kịch bản khảo sát"),
        shipped=list(shipped_names()),
        shipped_by=SHIPPED_BY,
        done=request.query.get("done", ""),
        error=None,
        **data,
    )


# -- the editor --------------------------------------------------------------------------------


def _live_places(ctx: AppContext, viewer: Viewer, name: str, version: int) -> list[tuple[str, str]]:
    """Where new surveys use this version, among the scopes the account sees."""
    with ctx.sessions() as session:
        return [
            (a.agency.code if a.agency is not None else "", a.channel.value)
            for a in live_assignments(session)
            if a.flow_version.name == name
            and a.flow_version.version == version
            and (a.agency_id is None or viewer.sees(a.agency_id))
        ]


def _stored_source(ctx: AppContext, name: str, version: int | None) -> str | None:
    with ctx.sessions() as session:
        if version is not None:
            row = find_version(session, name, version)
            return row.source if row is not None else None
    path = shipped_path(name)
    return path.read_text(encoding="utf-8") if path is not None else None


def _annotate(editor: Editor, report: FlowReport, lang: str) -> None:
    """Every problem under its line (or above the text when it has none), in the page's language."""
    by_line: dict[int, list[str]] = {}
    for issue in report.issues:
        text = _issue_text(issue, lang)
        if issue.line is None:
            editor.general.append(text)
        else:
            by_line.setdefault(issue.line, []).append(text)
    lines = editor.source.splitlines() or [""]
    editor.lines = [SourceLine(n, text, by_line.pop(n, [])) for n, text in enumerate(lines, start=1)]
    for line, texts in sorted(by_line.items()):  # past the end (e.g. a missing final key)
        editor.general += [f"{line}: {text}" for text in texts]
    editor.checked, editor.ok = True, report.ok


def _issue_text(issue: LineIssue, lang: str) -> str:
    message = in_language(issue.message, lang)
    return f"{issue.where}: {message}" if issue.where else message


def _try(editor: Editor, report: FlowReport, lang: str) -> None:
    """Run the checked flow as a citizen would: the opening, then each reply and what follows."""
    if report.flow is None:
        return
    channel = Channel(editor.channel)
    replies = [line.strip() for line in editor.replies.splitlines() if line.strip()][:MAX_REPLIES]
    try:
        steps = list(simulate(report.flow, replies, channel=channel, language=editor.language,
                              values=SAMPLE_VALUES))  # fmt: skip
    except FlowError as exc:
        editor.general.append(in_language(str(exc), lang))
        return
    for n, step in enumerate(steps):
        if n > 0:
            shown = step["reply"]
            if step["understood"]:
                note = f"→ {step['question']} = {step['value']}"
            elif step.get("keyword"):
                note = f"→ {step['keyword']}"
            else:
                note = f"→ ? ({step.get('reason') or 'not understood'})"
            editor.conversation.append(Shown("citizen", shown, len(shown), count_segments(shown), note))
        for message in step["messages"]:
            editor.conversation.append(Shown("bot", message, len(message), count_segments(message)))
    editor.conversation.append(Shown("state", steps[-1]["state"], 0, 0))


@routes.get("/flows/edit")
@require_role(*CONFIGURE)
async def edit_page(request: web.Request) -> web.Response:
    name = request.query.get("name", "sipas-sms")
    version_text = request.query.get("version", "")
    version = int(version_text) if version_text.isdigit() else None
    source = await asyncio.to_thread(_stored_source, request.app[CONTEXT], name, version)
    if source is None:
        return error_page(request, 404, "Không có kịch bản này.")
    editor = Editor(name=name, source=source, channel="zalo" if "zalo" in name else "sms", version=version)
    if version is not None:
        editor.live = await asyncio.to_thread(
            _live_places, request.app[CONTEXT], viewer_of(request), name, version
        )
    _annotate(editor, check_source(source, name), request[LANG])
    return await _editor_page(request, editor)


async def _editor_page(
    request: web.Request, editor: Editor, *, status: int = 200, error: str | None = None
) -> web.Response:
    _ = translator(request[LANG])
    ctx = request.app[CONTEXT]

    def scopes() -> list[tuple[str, str]]:
        with ctx.sessions() as session:
            return _scopes(session, viewer_of(request))

    return render(
        request,
        "flow_edit.html",
        status=status,
        title=_("Sửa kịch bản {name}", name=editor.name),
        editor=editor,
        scopes=await asyncio.to_thread(scopes),
        languages=LANGUAGES,
        error=_(error) if error else None,
    )


@routes.post("/flows/edit")
@require_role(*CONFIGURE)
async def edit_submit(request: web.Request) -> web.Response:
    form = await request.post()
    source = form.get("source")
    if not isinstance(source, str) or len(source) > MAX_SOURCE:
        return error_page(request, 413, "Kịch bản quá dài.")
    source = source.replace("\r\n", "\n")
    fields = {k: str(v)[:4000] for k, v in form.items() if isinstance(v, str) and k != "source"}
    channel = fields.get("channel", "sms")
    editor = Editor(
        name=fields.get("name", "")[:64] or "flow",
        source=source,
        replies=fields.get("replies", ""),
        channel=channel if channel in ("sms", "zalo") else "sms",
        language=fields.get("language", "vi") if fields.get("language") in LANGUAGES else "vi",
        scope=fields.get("scope", ""),
    )
    report = check_source(source, editor.name)
    _annotate(editor, report, request[LANG])
    action = fields.get("action", "check")
    if action == "try":
        _try(editor, report, request[LANG])
    if action != "publish":
        return await _editor_page(request, editor, status=200 if report.ok else 422)
    if not report.ok or report.flow is None:
        return await _editor_page(request, editor, status=422, error="Kịch bản còn lỗi: chưa đăng.")
    if fields.get("confirm") != "yes":
        return await _editor_page(
            request, editor, status=422, error="Đánh dấu ô xác nhận trước khi đăng kịch bản."
        )
    try:
        number = await asyncio.to_thread(
            _publish, request.app[CONTEXT], viewer_of(request), report, source, editor
        )
    except (FlowError, PermissionError) as exc:
        return await _editor_page(request, editor, status=422, error=str(exc))
    return redirect(f"/flows?done=published&name={editor.name}&version={number}")


def _scope_agency(session: Session, viewer: Viewer, code: str) -> Agency | None:
    """The agency a version is made live for (None: the default, admins only)."""
    if not code:
        if viewer.scope is not None:
            raise PermissionError("Chỉ quản trị viên đặt kịch bản mặc định.")
        return None
    agency = get_by_code(session, code)
    if agency is None or not viewer.sees(agency.id):
        raise PermissionError("Không có đơn vị này trong phạm vi của tài khoản.")
    return agency


def _publish(ctx: AppContext, viewer: Viewer, report: FlowReport, source: str, editor: Editor) -> int:
    assert report.flow is not None
    flow = report.flow
    with ctx.sessions() as session, session.begin():
        agency = _scope_agency(session, viewer, editor.scope)
        result = publish(
            session, flow, source, agency=agency, channels=None, by=viewer.username, now=datetime.now(UTC)
        )  # audited by flows.versions.publish
        return result.version


def _make_live(ctx: AppContext, viewer: Viewer, form: dict[str, str]) -> None:
    name, channel_text = form.get("name", ""), form.get("channel", "")
    version = int(form["version"]) if form.get("version", "").isdigit() else 0
    with ctx.sessions() as session, session.begin():
        row = find_version(session, name, version)
        if row is None or channel_text not in _channels_of(row.definition):
            raise FlowError("Không có phiên bản này cho kênh đã chọn.")
        agency = _scope_agency(session, viewer, form.get("scope", ""))
        channel = Channel(channel_text)
        current = live_assignment(session, agency.id if agency else None, channel)
        if current is not None and current.flow_version_id == row.id:
            return
        assign(session, agency_id=agency.id if agency else None, channel=channel, version=row,
               at=datetime.now(UTC), by=viewer.username)  # fmt: skip
        before = ({"name": current.flow_version.name, "version": current.flow_version.version}
                  if current is not None else None)  # fmt: skip
        audit.append(
            session, viewer.username, "flows.rollback", f"flow:{name}", before,
            {"name": name, "version": version, "channel": channel.value,
             "scope": agency.code if agency else "default"},
            agency_id=agency.id if agency else None,
        )  # fmt: skip


@routes.post("/flows/live")
@require_role(*CONFIGURE)
async def make_live(request: web.Request) -> web.Response:
    raw = await request.post()
    form = {k: str(v)[:200] for k, v in raw.items() if isinstance(v, str)}
    if form.get("confirm") != "yes":
        return await _overview_error(request, "Đánh dấu ô xác nhận trước khi đổi phiên bản đang dùng.")
    try:
        await asyncio.to_thread(_make_live, request.app[CONTEXT], viewer_of(request), form)
    except (FlowError, PermissionError) as exc:
        return await _overview_error(request, str(exc))
    return redirect("/flows?done=live")


async def _overview_error(request: web.Request, message: str) -> web.Response:
    _ = translator(request[LANG])
    data = await asyncio.to_thread(_overview, request.app[CONTEXT], viewer_of(request))
    return render(
        request,
        "flows.html",
        status=422,
        title=_("Kịch bản khảo sát"),
        shipped=list(shipped_names()),
        shipped_by=SHIPPED_BY,
        done="",
        error=_(message),
        **data,
    )
