"""Log-in and log-out (contract.md: form fields username, password and a hidden csrf_token)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog
from aiohttp import web

from bot.context import CONTEXT, AppContext
from bot.web.access import ANYONE, public, require_role
from bot.web.i18n import LANG, translator
from bot.web.render import render
from bot.web.sessions import end_session, optional_viewer, redirect, safe_next, start_session
from storage.users import LOCKOUT_FOR, LoginOutcome, authenticate

log = structlog.get_logger(__name__)
routes = web.RouteTableDef()

_MAX_FIELD = 256


@dataclass(frozen=True)
class _Attempt:
    outcome: LoginOutcome
    user_id: int | None
    password_hash: str | None


def _attempt(ctx: AppContext, username: str, password: str) -> _Attempt:
    with ctx.sessions() as session, session.begin():
        result = authenticate(session, username, password)
        user = result.user
        ok = result.outcome is LoginOutcome.OK and user is not None
        return _Attempt(
            result.outcome,
            user.id if ok and user is not None else None,
            user.password_hash if ok and user is not None else None,
        )


@routes.get("/login")
@public("the log-in form")
async def login_form(request: web.Request) -> web.Response:
    target = safe_next(request.query.get("next"))
    if optional_viewer(request) is not None:
        return redirect(target)
    return render(
        request,
        "login.html",
        title=translator(request[LANG])("Đăng nhập"),
        next=target,
        error=None,
        username="",
    )


@routes.post("/login")
@public("the log-in form (checks the password; CSRF token of the anonymous session)")
async def login_submit(request: web.Request) -> web.Response:
    _ = translator(request[LANG])
    form = await request.post()
    username = str(form.get("username") or "")[:_MAX_FIELD]
    password = str(form.get("password") or "")[:_MAX_FIELD]
    target = safe_next(str(form.get("next") or "/"))
    attempt = await asyncio.to_thread(_attempt, request.app[CONTEXT], username, password)
    log.info("login", username=username[:64], outcome=attempt.outcome.value)
    if attempt.outcome is LoginOutcome.OK and attempt.user_id is not None and attempt.password_hash:
        start_session(request, attempt.user_id, attempt.password_hash)
        return redirect(target)
    if attempt.outcome is LoginOutcome.LOCKED:
        minutes = int(LOCKOUT_FOR.total_seconds() // 60)
        error, status = (
            _(
                "Tài khoản tạm bị khóa do nhập sai mật khẩu nhiều lần. Thử lại sau {minutes} phút.",
                minutes=minutes,
            ),
            429,
        )
    else:
        error, status = _("Tên đăng nhập hoặc mật khẩu không đúng."), 401
    return render(
        request,
        "login.html",
        status=status,
        title=_("Đăng nhập"),
        next=target,
        error=error,
        username=username,
    )


@routes.post("/logout")
@require_role(*ANYONE)
async def logout(request: web.Request) -> web.Response:
    await end_session(request)
    return redirect("/login")
