"""/agencies: the registry as staff configure it: the tree of their units, a unit's details
(edit, merged into another or closed, staff numbers) and its survey rules with their origin
("set here", "inherited from ..."), and a file to import (a registry file, as `sipas agencies
import` reads, or a rules file, as `sipas rules import`). Every change is audited."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import yaml
from aiohttp import web
from multidict import MultiDictProxy
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.context import CONTEXT, AppContext
from bot.web.access import CONFIGURE, Viewer, require_role, viewer_of
from bot.web.i18n import LANG, translator
from bot.web.render import error_page, render
from bot.web.sessions import redirect
from flows import staff
from flows.phones import InvalidPhoneError, normalize_phone
from flows.registry import RegistryFileError, apply_import, plan_file, read_records
from flows.rules import RULES, Resolved, RuleBook, RuleValueError, change_rule, plan_import
from storage import audit
from storage.agencies import AgencyRow, get_by_code, staff_phones
from storage.models import Agency, AgencyLevel, StaffPhone

routes = web.RouteTableDef()
MAX_UPLOAD = 256 * 1024
# Shown through the catalogue (bot/web/en.json).
LEVEL_LABELS = {
    "province": "Tỉnh, thành phố",
    "department": "Sở, ban, ngành",
    "district": "Quận, huyện (trước 7/2025)",
    "commune": "Xã, phường, đặc khu",
}


class FormError(ValueError):
    """What is wrong with a submitted form: Vietnamese text from the catalogue, with `values` for
    its placeholders (a rule's own English explanation among them), shown in the page's language."""

    def __init__(self, message: str, **values: str) -> None:
        super().__init__(message)
        self.values = values


class ImportRefusedError(ValueError):
    """A rules file with problems: nothing was imported; `errors` lists every one."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class TreeRow:
    code: str
    name: str
    level: str
    depth: int
    closed: bool
    successor: str | None


@dataclass(frozen=True)
class RuleRow:
    name: str
    label: str
    shown: str
    origin: str
    here: bool
    hint: str
    # For a rule set here: what the unit would have without it, and where that comes from.
    inherited: str = ""
    inherited_origin: str = ""


@dataclass(frozen=True)
class StaffRow:
    id: int
    shown: str  # masked, or flows.staff.HASH_ONLY


def _visible(session: Session, viewer: Viewer) -> list[Agency]:
    query = select(Agency).order_by(Agency.code)
    if viewer.scope is not None:
        query = query.where(Agency.id.in_(viewer.scope))
    return list(session.scalars(query))


def _tree(units: list[Agency]) -> list[TreeRow]:
    """Depth-first, children under their parent; a unit whose parent is not visible is a root."""
    ids = {unit.id for unit in units}
    children: dict[int | None, list[Agency]] = {}
    for unit in units:
        children.setdefault(unit.parent_id if unit.parent_id in ids else None, []).append(unit)
    codes = {unit.id: unit.code for unit in units}
    rows: list[TreeRow] = []

    def walk(parent: int | None, depth: int) -> None:
        for unit in children.get(parent, []):
            closed = unit.valid_to is not None and unit.valid_to < date.today()  # valid_to: last day
            successor = codes.get(unit.successor_id) if unit.successor_id is not None else None
            rows.append(TreeRow(unit.code, unit.name, unit.level.value, min(depth, 6), closed, successor))
            walk(unit.id, depth + 1)

    walk(None, 0)
    return rows


def _tree_page(ctx: AppContext, viewer: Viewer) -> dict[str, Any]:
    with ctx.sessions() as session:
        units = _visible(session, viewer)
        return {"tree": _tree(units), "parents": [(u.code, u.name) for u in units]}


@routes.get("/agencies")
@require_role(*CONFIGURE)
async def agencies_page(request: web.Request) -> web.Response:
    _ = translator(request[LANG])
    data = await asyncio.to_thread(_tree_page, request.app[CONTEXT], viewer_of(request))
    return render(
        request,
        "agencies.html",
        title=_("Đơn vị"),
        levels=[level.value for level in AgencyLevel],
        level_labels=LEVEL_LABELS,
        done=request.query.get("done", ""),
        error=None,
        report=[],
        **data,
    )


def _form(raw: MultiDictProxy[Any]) -> dict[str, str]:
    return {key: str(value)[:2000] for key, value in raw.items() if isinstance(value, str)}


def _unit_in_scope(session: Session, viewer: Viewer, code: str) -> Agency:
    agency = get_by_code(session, code) if code else None
    if agency is None or not viewer.sees(agency.id):
        raise FormError("Không có đơn vị này trong phạm vi của tài khoản.")
    return agency


def _add_unit(ctx: AppContext, viewer: Viewer, form: dict[str, str]) -> str:
    code, name = form.get("code", "").strip(), " ".join(form.get("name", "").split())
    if not code or len(code) > 64 or not name or len(name) > 255:
        raise FormError("Cần mã (tối đa 64 ký tự) và tên (tối đa 255 ký tự).")
    try:
        level = AgencyLevel(form.get("level", ""))
    except ValueError:
        raise FormError("Chọn cấp của đơn vị.") from None
    with ctx.sessions() as session, session.begin():
        parent_code = form.get("parent", "")
        parent = _unit_in_scope(session, viewer, parent_code) if parent_code or viewer.scope else None
        if get_by_code(session, code) is not None:
            raise FormError("Mã này đã có trong danh mục.")
        agency = Agency(code=code, name=name, level=level, parent_id=parent.id if parent else None)
        session.add(agency)
        session.flush()
        audit.append(
            session, viewer.username, "agencies.add", f"agency:{code}", None,
            {"name": name, "level": level.value, "parent": parent.code if parent else None},
            agency_id=agency.id,
        )  # fmt: skip
    return code


@routes.post("/agencies")
@require_role(*CONFIGURE)
async def add_unit(request: web.Request) -> web.Response:
    form = _form(await request.post())
    try:
        code = await asyncio.to_thread(_add_unit, request.app[CONTEXT], viewer_of(request), form)
    except FormError as exc:
        return await _tree_error(request, str(exc))
    return redirect(f"/agencies/{code}?done=added")


async def _tree_error(request: web.Request, message: str, report: list[str] | None = None) -> web.Response:
    _ = translator(request[LANG])
    data = await asyncio.to_thread(_tree_page, request.app[CONTEXT], viewer_of(request))
    return render(
        request,
        "agencies.html",
        status=422,
        title=_("Đơn vị"),
        levels=[level.value for level in AgencyLevel],
        level_labels=LEVEL_LABELS,
        done="",
        error=_(message),
        report=report or [],
        **data,
    )


def _is_registry(text: str, name: str) -> bool:
    """A registry file (CSV, or YAML listing agencies) rather than a rules file."""
    if name.lower().endswith(".csv"):
        return True
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return False
    return isinstance(data, list) or (isinstance(data, dict) and isinstance(data.get("agencies"), list))


def _import_file(ctx: AppContext, viewer: Viewer, text: str, name: str) -> str:
    """Import a registry file (flows.registry) or a rules file (flows.rules.plan_import), all or
    nothing, within the account's units. Returns what was done, for the notice."""
    if _is_registry(text, name):
        try:
            records = read_records(text, name if name.lower().endswith(".csv") else "file.yaml")
        except RegistryFileError as exc:
            raise FormError(str(exc)) from None
        with ctx.sessions() as session, session.begin():
            plan = plan_file(session, records)
            errors = plan.errors or _outside_scope(session, viewer, plan.rows)
            if errors:
                raise ImportRefusedError(errors)
            counts = apply_import(session, plan.rows, viewer.username)
        return f"registry:{counts['created']}:{counts['updated']}"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise FormError(f"YAML: {exc}") from None
    with ctx.sessions() as session, session.begin():
        units = _visible(session, viewer)
        codes = {unit.code: unit for unit in units}
        # A channels file's default goes onto the top units the account may configure.
        visible = {unit.id for unit in units}
        roots = [unit for unit in units if unit.parent_id not in visible]
        changes, errors = plan_import(data, codes, roots)
        if errors:
            raise ImportRefusedError(errors)
        now, changed = datetime.now(UTC), 0
        for agency, rule, value in changes:
            before, after = change_rule(session, agency, rule, value, actor=viewer.username, now=now)
            changed += before != after
    return f"rules:{changed}"


def _outside_scope(session: Session, viewer: Viewer, rows: list[AgencyRow]) -> list[str]:
    """Rows a staff account may not write: units outside its subtree, new units under one."""
    if viewer.scope is None:
        return []
    new = {row.code for row in rows if get_by_code(session, row.code) is None}
    errors = []
    for row in rows:
        existing = get_by_code(session, row.code)
        parent = get_by_code(session, row.parent_code) if row.parent_code else None
        if existing is not None and not viewer.sees(existing.id):
            errors.append(f"{row.code}: not one of this account's units")
        elif (
            existing is None and row.parent_code not in new and (parent is None or not viewer.sees(parent.id))
        ):
            errors.append(f"{row.code}: its parent must be one of this account's units")
    return errors


@routes.post("/agencies/import")
@require_role(*CONFIGURE)
async def import_rules(request: web.Request) -> web.Response:
    form = await request.post()
    upload = form.get("file")
    text = form.get("text")
    name = "rules.yaml"
    if isinstance(upload, web.FileField):
        name = upload.filename or name
        content = upload.file.read(MAX_UPLOAD + 1)
        if len(content) > MAX_UPLOAD:
            return await _tree_error(request, "Tệp quá lớn (tối đa 256 KB).")
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError:
            return await _tree_error(request, "Tệp không phải văn bản UTF-8.")
    if not isinstance(text, str) or not text.strip():
        return await _tree_error(request, "Chọn một tệp danh mục đơn vị (CSV, YAML) hoặc tệp quy tắc (YAML).")
    try:
        done = await asyncio.to_thread(_import_file, request.app[CONTEXT], viewer_of(request), text, name)
    except ImportRefusedError as exc:
        return await _tree_error(request, "Tệp có lỗi, chưa nhập gì:", exc.errors)
    except FormError as exc:
        return await _tree_error(request, str(exc))
    return redirect(f"/agencies?done=imported&what={done}")


# -- one unit ----------------------------------------------------------------------------------


def _unit_page(ctx: AppContext, viewer: Viewer, code: str, lang: str) -> dict[str, Any] | None:
    with ctx.sessions() as session:
        agency = get_by_code(session, code)
        if agency is None or not viewer.sees(agency.id):
            return None
        book = RuleBook(session, ctx.settings)
        resolved: dict[str, Resolved] = book.resolved(agency)
        inherited = book.inherited(agency) if any(r.here for r in resolved.values()) else resolved
        # What the rules mean right now: when a case closed this minute would be asked.
        next_send = book.for_agency(agency).next_send_time(datetime.now(UTC)).astimezone(ctx.settings.tz)
        rules = [
            RuleRow(
                spec.name,
                spec.label(lang),
                resolved[spec.name].shown(),
                resolved[spec.name].origin(lang),
                resolved[spec.name].here,
                spec.hint,
                inherited[spec.name].shown() if resolved[spec.name].here else "",
                inherited[spec.name].origin(lang) if resolved[spec.name].here else "",
            )
            for spec in RULES
        ]
        chain: list[tuple[str, str, bool]] = []
        current = agency.parent
        while current is not None and len(chain) < 10:
            chain.append((current.code, current.name, viewer.sees(current.id)))
            current = current.parent
        units = _visible(session, viewer)
        successor = session.get(Agency, agency.successor_id) if agency.successor_id else None
        return {
            "unit": {
                "code": agency.code,
                "name": agency.name,
                "level": agency.level.value,
                "parent": agency.parent.code if agency.parent is not None else "",
                "valid_from": agency.valid_from.isoformat() if agency.valid_from else "",
                "valid_to": agency.valid_to.isoformat() if agency.valid_to else "",
                "successor": successor.code if successor is not None else "",
            },
            "chain": list(reversed(chain)),
            "rules": rules,
            "staff": [
                StaffRow(row.id, staff.shown(ctx.vault, row)) for row in staff_phones(session, agency.id)
            ],
            "next_send": next_send.strftime("%H:%M %d/%m/%Y"),
            "others": [(u.code, u.name) for u in units if u.id != agency.id],
        }


async def _unit(
    request: web.Request,
    *,
    status: int = 200,
    error: FormError | None = None,
    done: str = "",
    typed: dict[str, str] | None = None,
) -> web.Response:
    """The unit page; after a refused form, `typed` is what was typed, shown again to correct."""
    _ = translator(request[LANG])
    code = request.match_info["code"]
    data = await asyncio.to_thread(_unit_page, request.app[CONTEXT], viewer_of(request), code, request[LANG])
    if data is None:
        return error_page(request, 404, "Không có đơn vị này trong phạm vi của tài khoản.")
    return render(
        request,
        "agency.html",
        status=status,
        title=f"{data['unit']['name']} ({code})",
        levels=[level.value for level in AgencyLevel],
        level_labels=LEVEL_LABELS,
        error=_(str(error), **{k: _(v) for k, v in error.values.items()}) if error else None,
        done=done or request.query.get("done", ""),
        typed=typed or {},
        **data,
    )


@routes.get("/agencies/{code}")
@require_role(*CONFIGURE)
async def unit_page(request: web.Request) -> web.Response:
    return await _unit(request)


def _edit_unit(ctx: AppContext, viewer: Viewer, code: str, form: dict[str, str]) -> None:
    name = " ".join(form.get("name", "").split())
    if not name or len(name) > 255:
        raise FormError("Cần mã (tối đa 64 ký tự) và tên (tối đa 255 ký tự).")
    try:
        level = AgencyLevel(form.get("level", ""))
    except ValueError:
        raise FormError("Chọn cấp của đơn vị.") from None
    with ctx.sessions() as session, session.begin():
        agency = _unit_in_scope(session, viewer, code)
        parent_code = form.get("parent", "")
        parent = agency.parent
        if parent_code != (parent.code if parent is not None else ""):
            parent = _unit_in_scope(session, viewer, parent_code) if parent_code else None
            if parent is None and viewer.scope is not None:
                raise FormError("Không có đơn vị này trong phạm vi của tài khoản.")
            ancestor = parent
            while ancestor is not None:
                if ancestor.id == agency.id:
                    raise FormError("Đơn vị cấp trên không thể là chính nó hoặc đơn vị cấp dưới của nó.")
                ancestor = ancestor.parent
        before = {"name": agency.name, "level": agency.level.value,
                  "parent": agency.parent.code if agency.parent else None}  # fmt: skip
        after = {"name": name, "level": level.value, "parent": parent.code if parent else None}
        if before == after:
            return
        agency.name, agency.level, agency.parent_id = name, level, parent.id if parent else None
        audit.append(session, viewer.username, "agencies.update", f"agency:{code}", before, after,
                     agency_id=agency.id)  # fmt: skip


async def _change_unit(
    request: web.Request, change: Callable[[AppContext, Viewer, str, dict[str, str]], None], done: str
) -> web.Response:
    """Apply one of a unit page's forms: `change` runs in a thread; a refusal (FormError) shows the
    unit page again with its reason (422), success goes back to the page with `?done=<done>`."""
    code = request.match_info["code"]
    form = _form(await request.post())
    try:
        await asyncio.to_thread(change, request.app[CONTEXT], viewer_of(request), code, form)
    except FormError as exc:
        return await _unit(request, status=422, error=exc, typed=form)
    return redirect(f"/agencies/{code}?done={done}")


@routes.post("/agencies/{code}")
@require_role(*CONFIGURE)
async def edit_unit(request: web.Request) -> web.Response:
    return await _change_unit(request, _edit_unit, "saved")


def _set_status(ctx: AppContext, viewer: Viewer, code: str, form: dict[str, str]) -> None:
    """Closed from a day on (valid_to), merged into a successor, or open again (both empty)."""
    text, successor_code = form.get("valid_to", "").strip(), form.get("successor", "").strip()
    try:
        valid_to = date.fromisoformat(text) if text else None
    except ValueError:
        raise FormError("Ngày phải viết dạng YYYY-MM-DD.") from None
    if successor_code and valid_to is None:
        raise FormError("Đơn vị sáp nhập cần ngày thôi hoạt động.")
    with ctx.sessions() as session, session.begin():
        agency = _unit_in_scope(session, viewer, code)
        successor = _unit_in_scope(session, viewer, successor_code) if successor_code else None
        if successor is not None and successor.id == agency.id:
            raise FormError("Đơn vị không thể sáp nhập vào chính nó.")
        old_successor = session.get(Agency, agency.successor_id) if agency.successor_id else None
        before = {"valid_to": agency.valid_to.isoformat() if agency.valid_to else None,
                  "successor": old_successor.code if old_successor else None}  # fmt: skip
        after = {"valid_to": valid_to.isoformat() if valid_to else None,
                 "successor": successor.code if successor else None}  # fmt: skip
        if before == after:
            return
        agency.valid_to, agency.successor_id = valid_to, successor.id if successor else None
        action = "agencies.merge" if successor else "agencies.close" if valid_to else "agencies.reopen"
        audit.append(session, viewer.username, action, f"agency:{code}", before, after, agency_id=agency.id)


@routes.post("/agencies/{code}/status")
@require_role(*CONFIGURE)
async def unit_status(request: web.Request) -> web.Response:
    return await _change_unit(request, _set_status, "saved")


def _change_rule(ctx: AppContext, viewer: Viewer, code: str, form: dict[str, str]) -> None:
    name = form.get("rule", "")
    remove = form.get("action") == "unset"
    with ctx.sessions() as session, session.begin():
        agency = _unit_in_scope(session, viewer, code)
        try:
            change_rule(session, agency, name, None if remove else form.get("value", ""),
                        actor=viewer.username, now=datetime.now(UTC))  # fmt: skip
        except RuleValueError as exc:
            hint = next((spec.hint for spec in RULES if spec.name == name), "")
            if not hint:
                raise FormError(
                    "Không lưu được quy tắc {rule}: {reason}", rule=name, reason=str(exc)
                ) from None
            raise FormError(
                "Không lưu được quy tắc {rule}: giá trị phải có dạng {hint} ({reason}).",
                rule=name,
                hint=hint,
                reason=str(exc),
            ) from None


@routes.post("/agencies/{code}/rules")
@require_role(*CONFIGURE)
async def unit_rule(request: web.Request) -> web.Response:
    return await _change_unit(request, _change_rule, "rule#rules")


def _add_staff(ctx: AppContext, viewer: Viewer, code: str, form: dict[str, str]) -> None:
    try:
        phone = normalize_phone(form.get("phone", ""))
    except InvalidPhoneError:
        raise FormError("Số điện thoại không hợp lệ.") from None
    with ctx.sessions() as session, session.begin():
        staff.register(
            session, ctx.vault, _unit_in_scope(session, viewer, code), phone, actor=viewer.username
        )


@routes.post("/agencies/{code}/staff")
@require_role(*CONFIGURE)
async def unit_staff(request: web.Request) -> web.Response:
    return await _change_unit(request, _add_staff, "staff#staff")


def _remove_staff(ctx: AppContext, viewer: Viewer, code: str, form: dict[str, str]) -> None:
    with ctx.sessions() as session, session.begin():
        agency = _unit_in_scope(session, viewer, code)
        row = session.get(StaffPhone, int(form["id"])) if form.get("id", "").isdigit() else None
        if row is None or row.agency_id != agency.id:
            raise FormError("Số này không còn trong danh sách của đơn vị.")
        staff.remove(session, ctx.vault, agency, row, actor=viewer.username)


@routes.post("/agencies/{code}/staff/remove")
@require_role(*CONFIGURE)
async def unit_staff_remove(request: web.Request) -> web.Response:
    return await _change_unit(request, _remove_staff, "staff-removed#staff")
