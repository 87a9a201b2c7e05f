"""Browser sessions: a signed cookie, the account behind it, the CSRF token, and the guard that
enforces bot.web.access on every page route.

The cookie holds {sid, csrf, uid, pw, iat} as base64url JSON with an HMAC-SHA256 signature keyed
from SIPAS_SECRET_KEY; it is HttpOnly, SameSite=Lax, Secure when the public URL is https, and
lives at most SESSION_MAX_AGE. Nothing secret is in it: `pw` is a keyed fingerprint of the
account's password hash, so changing the password ends every session made with the old one;
a disabled account's sessions end at their next request; log-out records the session id in
Redis until the cookie would have expired. A browser without a session gets an anonymous one
(no uid) so the log-in form, too, carries a CSRF token.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from urllib.parse import quote

import structlog
from aiohttp import web

from bot.context import CONTEXT, AppContext
from bot.web.access import VIEWER, Viewer, access_of
from bot.web.i18n import LANG, pick_language
from storage.models import Agency, User
from storage.users import subtree_ids

log = structlog.get_logger(__name__)

COOKIE = "sipas_session"
LANG_COOKIE = "sipas_lang"
SESSION_MAX_AGE = 12 * 3600
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_ENDED = "sipas:web:ended:"


@dataclass(frozen=True)
class SessionState:
    sid: str
    csrf: str
    uid: int | None
    pw: str | None
    iat: int

    @classmethod
    def anonymous(cls) -> SessionState:
        return cls(secrets.token_urlsafe(16), secrets.token_urlsafe(24), None, None, int(time.time()))


SESSION = web.RequestKey("session", SessionState)
NEW_SESSION = web.RequestKey("new_session", SessionState)


def _key(ctx: AppContext) -> bytes:
    return hmac.new(ctx.settings.SIPAS_SECRET_KEY.encode(), b"sipas web session v1", hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def password_fingerprint(ctx: AppContext, password_hash: str) -> str:
    return hmac.new(_key(ctx), password_hash.encode(), hashlib.sha256).hexdigest()[:32]


def encode(ctx: AppContext, state: SessionState) -> str:
    body = _b64(json.dumps(state.__dict__, separators=(",", ":")).encode())
    signature = _b64(hmac.new(_key(ctx), body.encode(), hashlib.sha256).digest())
    return f"{body}.{signature}"


def decode(ctx: AppContext, cookie: str | None, now: float | None = None) -> SessionState | None:
    """The session in a cookie, or None when it is absent, forged, malformed or expired."""
    if not cookie or len(cookie) > 1024 or "." not in cookie:
        return None
    body, _, signature = cookie.partition(".")
    expected = _b64(hmac.new(_key(ctx), body.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(expected, signature):
        return None
    try:
        data = json.loads(_unb64(body))
        state = SessionState(
            sid=str(data["sid"]),
            csrf=str(data["csrf"]),
            uid=None if data["uid"] is None else int(data["uid"]),
            pw=None if data["pw"] is None else str(data["pw"]),
            iat=int(data["iat"]),
        )
    except (ValueError, KeyError, TypeError, binascii.Error):
        return None
    if (now if now is not None else time.time()) - state.iat > SESSION_MAX_AGE:
        return None
    return state


def start_session(request: web.Request, user_id: int, password_hash: str) -> SessionState:
    """After a good log-in: a new session id and CSRF token (never reuse the anonymous ones)."""
    ctx = request.app[CONTEXT]
    fresh = SessionState.anonymous()
    state = replace(fresh, uid=user_id, pw=password_fingerprint(ctx, password_hash))
    request[NEW_SESSION] = state
    return state


async def end_session(request: web.Request) -> None:
    """Log-out: the old session id is refused from now on, the browser gets an anonymous one."""
    ctx = request.app[CONTEXT]
    old = request[SESSION]
    remaining = max(1, SESSION_MAX_AGE - int(time.time() - old.iat))
    await asyncio.to_thread(ctx.redis.set, _ENDED + old.sid, "1", ex=remaining)
    request[NEW_SESSION] = SessionState.anonymous()


def _load_viewer(ctx: AppContext, state: SessionState) -> Viewer | None:
    if state.uid is None:
        return None
    if ctx.redis.exists(_ENDED + state.sid):
        return None
    with ctx.sessions() as session:
        user = session.get(User, state.uid)
        if user is None or user.disabled:
            return None
        if state.pw is None or not hmac.compare_digest(
            state.pw, password_fingerprint(ctx, user.password_hash)
        ):
            return None
        scope = subtree_ids(session, user.agency_id)
        agency = session.get(Agency, user.agency_id) if user.agency_id is not None else None
        return Viewer(
            user_id=user.id,
            username=user.username,
            role=user.role,
            agency_id=user.agency_id,
            agency_code=agency.code if agency is not None else None,
            language=user.language,
            scope=frozenset(scope) if scope is not None else None,
        )


def optional_viewer(request: web.Request) -> Viewer | None:
    """The account on any page route, public ones included (None when nobody is logged in)."""
    return request.get(VIEWER)


def redirect(location: str) -> web.Response:
    """303 See Other: after a POST the browser GETs `location`."""
    return web.Response(status=303, headers={"Location": location})


def safe_next(target: str | None) -> str:
    """Where to go after log-in: only a path on this site (no "//host", no scheme)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


async def _csrf_ok(request: web.Request, state: SessionState) -> bool:
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    return sent is not None and hmac.compare_digest(sent.encode(), state.csrf.encode())


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Enforce the declared access of page routes (routes without a declaration pass untouched:
    they authenticate themselves, see access.PUBLIC_ROUTES)."""
    access = access_of(request.match_info.handler)
    if access is None:
        return await handler(request)
    from bot.web.render import error_page  # render needs this module's keys; import late

    ctx = request.app[CONTEXT]
    received = decode(ctx, request.cookies.get(COOKIE))
    state = received or SessionState.anonymous()
    viewer = await asyncio.to_thread(_load_viewer, ctx, state) if state.uid is not None else None
    if state.uid is not None and viewer is None:
        state = SessionState.anonymous()  # logged out, disabled, password changed, or expired
    request[SESSION] = state
    if viewer is not None:
        request[VIEWER] = viewer
    request[LANG] = pick_language(request.query.get("lang"), request.cookies.get(LANG_COOKIE), viewer)

    response: web.StreamResponse
    if not access.is_public and viewer is None:
        response = redirect("/login?next=" + quote(request.path_qs, safe="/"))
    elif not access.is_public and viewer is not None and viewer.role not in access.roles:
        response = error_page(request, 403, "Bạn không có quyền xem trang này.")
    elif request.method not in SAFE_METHODS and not await _csrf_ok(request, state):
        log.warning("csrf refused", path=request.path, user=viewer.username if viewer else None)
        response = error_page(
            request, 403, "Biểu mẫu đã hết hạn hoặc không hợp lệ. Hãy tải lại trang và thử lại."
        )
    else:
        response = await handler(request)

    final = request.get(NEW_SESSION, state)
    if final is not received:
        secure = ctx.settings.public_url.startswith("https://") or request.secure
        response.set_cookie(
            COOKIE,
            encode(ctx, final),
            max_age=SESSION_MAX_AGE,
            path="/",
            httponly=True,
            samesite="Lax",
            secure=secure,
        )
    chosen = request.query.get("lang")
    if chosen in ("vi", "en") and request.cookies.get(LANG_COOKIE) != chosen:
        response.set_cookie(LANG_COOKIE, chosen, max_age=365 * 86400, path="/", httponly=True, samesite="Lax")
    return response
