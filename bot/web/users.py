"""/users: admins list accounts, add one, disable one (the same rules as `sipas users`)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web
from sqlalchemy import select

from bot.context import CONTEXT, AppContext
from bot.web.access import ADMIN_ONLY, Viewer, require_role, viewer_of
from bot.web.i18n import LANG, translator
from bot.web.render import render
from bot.web.sessions import redirect
from storage.agencies import get_by_code
from storage.models import Agency, UserRole
from storage.users import LANGUAGES, UserError, add_user, all_users, disable_user

routes = web.RouteTableDef()


@dataclass(frozen=True)
class AccountRow:
    username: str
    role: str
    agency: str
    email: str
    language: str
    disabled: bool
    locked_until: datetime | None
    last_login_at: datetime | None


def _accounts(ctx: AppContext) -> tuple[list[AccountRow], Sequence[tuple[str, str]]]:
    with ctx.sessions() as session:
        rows = [
            AccountRow(
                username=u.username,
                role=u.role.value,
                agency=f"{u.agency.code} · {u.agency.name}" if u.agency is not None else "*",
                email=u.email or "",
                language=u.language,
                disabled=u.disabled,
                locked_until=u.locked_until.astimezone(ctx.settings.tz) if u.locked_until else None,
                last_login_at=u.last_login_at.astimezone(ctx.settings.tz) if u.last_login_at else None,
            )
            for u in all_users(session)
        ]
        agencies = [(a.code, a.name) for a in session.scalars(select(Agency).order_by(Agency.code))]
    return rows, agencies


async def _page(
    request: web.Request, *, status: int = 200, error: str | None = None, done: str | None = None
) -> web.Response:
    _ = translator(request[LANG])
    rows, agencies = await asyncio.to_thread(_accounts, request.app[CONTEXT])
    return render(
        request,
        "users.html",
        status=status,
        title=_("Tài khoản"),
        accounts=rows,
        agencies=agencies,
        roles=[role.value for role in UserRole],
        languages=LANGUAGES,
        error=error,
        done=done,
        now=datetime.now(request.app[CONTEXT].settings.tz),
    )


@routes.get("/users")
@require_role(*ADMIN_ONLY)
async def users_page(request: web.Request) -> web.Response:
    done = request.query.get("done")
    return await _page(request, done=done if done in ("added", "disabled") else None)


def _add(ctx: AppContext, viewer: Viewer, form: dict[str, str]) -> None:
    with ctx.sessions() as session, session.begin():
        code = form.get("agency", "")
        agency = get_by_code(session, code) if code else None
        if code and agency is None:
            raise UserError(f"no agency with code {code!r}")
        try:
            role = UserRole(form.get("role", ""))
        except ValueError:
            raise UserError("choose a role") from None
        add_user(
            session,
            actor=viewer.username,
            username=form.get("username", ""),
            role=role,
            agency=agency,
            password=form.get("password", ""),
            email=form.get("email") or None,
            zalo_user_id=form.get("zalo_user_id") or None,
            language=form.get("language", "vi"),
        )


@routes.post("/users")
@require_role(*ADMIN_ONLY)
async def add_account(request: web.Request) -> web.Response:
    raw = await request.post()
    form = {key: str(value)[:256] for key, value in raw.items() if isinstance(value, str)}
    try:
        await asyncio.to_thread(_add, request.app[CONTEXT], viewer_of(request), form)
    except UserError as exc:
        _ = translator(request[LANG])
        return await _page(
            request, status=422, error=_("Không tạo được tài khoản: {reason}", reason=str(exc))
        )
    return redirect("/users?done=added")


def _disable(ctx: AppContext, viewer: Viewer, username: str) -> None:
    with ctx.sessions() as session, session.begin():
        disable_user(session, actor=viewer.username, username=username)


@routes.post("/users/{username}/disable")
@require_role(*ADMIN_ONLY)
async def disable_account(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    username = request.match_info["username"]
    _ = translator(request[LANG])
    if username == viewer.username:
        return await _page(request, status=422, error=_("Không thể tự khóa tài khoản của chính mình."))
    try:
        await asyncio.to_thread(_disable, request.app[CONTEXT], viewer, username)
    except UserError as exc:
        return await _page(
            request, status=404, error=_("Không khóa được tài khoản: {reason}", reason=str(exc))
        )
    return redirect("/users?done=disabled")
