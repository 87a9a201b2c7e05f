"""Who may open which route: every route is either behind log-in with a role check or public on
purpose, and tests/web/test_routes.py walks the route table to prove it.

A page handler says what it needs with a decorator (the middleware in bot.web.sessions enforces it):

    @routes.get("/inbox")
    @require_role(*CONFIGURE)          # staff and admins
    async def inbox(request: web.Request) -> web.Response:
        viewer = viewer_of(request)   # the logged-in account and the agencies it may see
        ...

    @routes.get("/login")
    @public("the log-in form")
    async def login_form(request): ...

Routes served by the rest of the app (webhooks, intake, probes, the token API) authenticate
themselves (signatures, tokens) and are listed in PUBLIC_ROUTES with the reason.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from aiohttp import web

from storage.models import UserRole

__all__ = [
    "ANYONE",
    "CONFIGURE",
    "PUBLIC_ROUTES",
    "ROLE_NAMES",
    "Access",
    "Viewer",
    "access_of",
    "public",
    "require_role",
    "viewer_of",
]

ANYONE = (UserRole.ADMIN, UserRole.STAFF, UserRole.SUPERVISOR)  # any logged-in account
CONFIGURE = (UserRole.ADMIN, UserRole.STAFF)  # may change configuration of their subtree
ADMIN_ONLY = (UserRole.ADMIN,)
ROLE_NAMES = {UserRole.ADMIN: "Quản trị", UserRole.STAFF: "Cán bộ", UserRole.SUPERVISOR: "Giám sát"}

# Routes outside bot/web that need no session, and what protects them instead.
PUBLIC_ROUTES: dict[tuple[str, str], str] = {
    ("/healthz", "GET"): "liveness probe, no data",
    ("/readyz", "GET"): "readiness probe, names only which dependency is down",
    ("/metrics", "GET"): "Authorization: Bearer SIPAS_METRICS_TOKEN (404 without one); no personal data",
    ("/api/v1/cases/closed", "POST"): "HMAC signature of the one-stop system (X-Sipas-Signature)",
    ("/webhooks/sms/kannel", "GET"): "Kannel MO token (KANNEL_MO_TOKEN)",
    ("/webhooks/sms/kannel", "POST"): "Kannel MO token (KANNEL_MO_TOKEN)",
    ("/webhooks/sms/kannel/dlr", "GET"): "token in the dlr-url we set",
    ("/webhooks/sms/kannel/dlr", "POST"): "token in the dlr-url we set",
    ("/webhooks/sms/brandname/mo", "POST"): "X-Brandname-Signature (HMAC of timestamp and body)",
    ("/webhooks/sms/brandname/status", "POST"): "X-Brandname-Signature (HMAC of timestamp and body)",
    ("/webhooks/zalo/bot", "POST"): "X-Bot-Api-Secret-Token (constant-time compare)",
    ("/webhooks/zalo/oa", "POST"): "X-ZEvent-Signature (app id, body, timestamp, OA secret)",
    ("/api/v1/scores", "GET"): "Authorization: Bearer API token scoped to an agency subtree",
}

_Handler = TypeVar("_Handler", bound=Callable[[web.Request], Awaitable[web.StreamResponse]])
_MARK = "__sipas_access__"


@dataclass(frozen=True)
class Access:
    """What a page route needs: `roles` empty means public (with `reason`)."""

    roles: tuple[UserRole, ...]
    reason: str = ""

    @property
    def is_public(self) -> bool:
        return not self.roles


def require_role(*roles: UserRole) -> Callable[[_Handler], _Handler]:
    """Only a logged-in account with one of `roles` reaches the handler: no session answers 303 to
    /login, another role 403. Unsafe methods (POST...) also need the session's CSRF token."""
    if not roles:
        raise ValueError("require_role needs at least one role; use public(reason) for open routes")

    def mark(handler: _Handler) -> _Handler:
        setattr(handler, _MARK, Access(tuple(roles)))
        return handler

    return mark


def public(reason: str) -> Callable[[_Handler], _Handler]:
    """A page route open without log-in (the log-in form, static files): say why. Unsafe methods
    still need the CSRF token of the browser's (anonymous) session."""

    def mark(handler: _Handler) -> _Handler:
        setattr(handler, _MARK, Access((), reason))
        return handler

    return mark


def access_of(handler: object) -> Access | None:
    """The declared access of a route handler, or None for routes outside the pages."""
    found = getattr(handler, _MARK, None)
    return found if isinstance(found, Access) else None


@dataclass(frozen=True)
class Viewer:
    """The logged-in account as a request sees it. `scope` holds the agency ids it may see (its
    agency and everything below); None means every agency (an admin without an agency)."""

    user_id: int
    username: str
    role: UserRole
    agency_id: int | None
    agency_code: str | None
    language: str
    scope: frozenset[int] | None

    def sees(self, agency_id: int | None) -> bool:
        if self.scope is None:
            return True
        return agency_id is not None and agency_id in self.scope

    @property
    def can_configure(self) -> bool:
        return self.role in CONFIGURE

    @property
    def is_admin(self) -> bool:
        return self.role is UserRole.ADMIN


VIEWER = web.RequestKey("viewer", Viewer)


def viewer_of(request: web.Request) -> Viewer:
    """The account behind a request that passed require_role (never call it on a public route)."""
    return request[VIEWER]
