"""Log-in, sessions, CSRF, lock-out, security headers and the admin pages through the real app."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.web.sessions import COOKIE
from storage.audit import verify
from storage.models import AuditEntry, User, UserRole
from storage.users import LOCKOUT_AFTER, set_password
from tests.support.app import Client
from tests.web.support import PASSWORD, csrf_of, log_in, seed_tree, seed_user


async def test_login_page_and_session_cookie(client: Client, sessions: sessionmaker[Session]) -> None:
    seed_tree(sessions)
    seed_user(sessions, "lan", UserRole.SUPERVISOR, "HN-BD")
    first = await client.get("/", allow_redirects=False)
    assert first.status == 303
    assert first.headers["Location"] == "/login?next=/"
    form = await client.get("/login?next=/audit")
    html = await form.text()
    assert 'name="username"' in html
    assert 'name="password"' in html
    assert 'type="hidden" name="csrf_token"' in html
    assert "Đăng nhập" in html
    token = csrf_of(html)
    answer = await client.post(
        "/login",
        data={"username": "lan", "password": PASSWORD, "csrf_token": token, "next": "/users"},
        allow_redirects=False,
    )
    assert answer.status == 303
    assert answer.headers["Location"] == "/users"
    cookie = answer.cookies[COOKIE]
    assert cookie["httponly"]
    assert cookie["samesite"] == "Lax"
    home = await client.get("/")
    assert home.status == 200
    assert "lan" in await home.text()
    # Redirect targets stay on this site.
    again = await client.get("/login?next=//evil.example/x", allow_redirects=False)
    assert again.headers["Location"] == "/"


async def test_wrong_password_and_lockout(client: Client, sessions: sessionmaker[Session]) -> None:
    seed_tree(sessions)
    seed_user(sessions, "lan", UserRole.SUPERVISOR, "HN-BD")
    token = csrf_of(await (await client.get("/login")).text())
    statuses = []
    for _ in range(LOCKOUT_AFTER):
        answer = await client.post(
            "/login", data={"username": "lan", "password": "sai-mat-khau-x", "csrf_token": token}
        )
        statuses.append(answer.status)
    assert statuses == [401] * (LOCKOUT_AFTER - 1) + [429]
    locked = await client.post("/login", data={"username": "lan", "password": PASSWORD, "csrf_token": token})
    assert locked.status == 429
    assert "tạm bị khóa" in await locked.text()
    with sessions() as s, s.begin():
        set_password(s, actor="admin", username="lan", password=PASSWORD)  # an admin lifts the lock
    await log_in(client, "lan")


async def test_post_without_csrf_token_is_refused(client: Client, sessions: sessionmaker[Session]) -> None:
    seed_tree(sessions)
    seed_user(sessions, "root", UserRole.ADMIN, None)
    no_token = await client.post(
        "/login", data={"username": "root", "password": PASSWORD}, allow_redirects=False
    )
    assert no_token.status == 403
    csrf = await log_in(client, "root")
    refused = await client.post(
        "/users", data={"username": "minh", "role": "staff", "agency": "HN", "password": PASSWORD}
    )
    assert refused.status == 403
    forged = await client.post(
        "/users",
        data={
            "username": "minh",
            "role": "staff",
            "agency": "HN",
            "password": PASSWORD,
            "csrf_token": "x" * 32,
        },
    )
    assert forged.status == 403
    with sessions() as s:
        assert s.scalar(select(User).where(User.username == "minh")) is None
    made = await client.post(
        "/users",
        data={"username": "minh", "role": "staff", "agency": "HN", "password": PASSWORD, "csrf_token": csrf},
        allow_redirects=False,
    )
    assert made.status == 303
    assert made.headers["Location"] == "/users?done=added"


async def test_admin_adds_and_disables_accounts_in_the_audit_log(
    client: Client, sessions: sessionmaker[Session]
) -> None:
    seed_tree(sessions)
    seed_user(sessions, "root", UserRole.ADMIN, None)
    csrf = await log_in(client, "root")
    bad = await client.post(
        "/users",
        data={"username": "x", "role": "staff", "agency": "", "password": PASSWORD, "csrf_token": csrf},
    )
    assert bad.status == 422
    made = await client.post(
        "/users",
        data={"username": "minh", "role": "staff", "agency": "HN-BD", "email": "minh@hanoi.gov.vn",
              "language": "vi", "password": PASSWORD, "csrf_token": csrf},
    )  # fmt: skip
    assert made.status == 200
    assert "Đã tạo tài khoản." in await made.text()
    disabled = await client.post("/users/minh/disable", data={"csrf_token": csrf})
    assert disabled.status == 200
    page = await (await client.get("/users")).text()
    assert "minh" in page
    assert "Đã khóa" in page
    audit = await (await client.get("/audit")).text()
    assert "users.add" in audit
    assert "users.disable" in audit
    assert "Chuỗi băm của nhật ký nguyên vẹn." in audit
    with sessions() as s:
        actions = [
            (e.actor, e.action, e.target) for e in s.scalars(select(AuditEntry).order_by(AuditEntry.id))
        ]
        assert actions[-2:] == [("root", "users.add", "user:minh"), ("root", "users.disable", "user:minh")]
        assert verify(s) is None


async def test_logout_ends_the_session_and_a_disabled_account_is_logged_out(
    client: Client, sessions: sessionmaker[Session]
) -> None:
    seed_tree(sessions)
    seed_user(sessions, "lan", UserRole.SUPERVISOR, "HN-BD")
    csrf = await log_in(client, "lan")
    old_cookie = client.session.cookie_jar.filter_cookies(client.make_url("/"))[COOKIE].value
    out = await client.post("/logout", data={"csrf_token": csrf}, allow_redirects=False)
    assert out.status == 303
    assert out.headers["Location"] == "/login"
    # The old cookie replayed after log-out is refused.
    replay = await client.get("/", cookies={COOKIE: old_cookie}, allow_redirects=False)
    assert replay.status == 303

    await log_in(client, "lan")
    with sessions() as s, s.begin():
        user = s.scalar(select(User).where(User.username == "lan"))
        assert user is not None
        user.disabled = True
    gone = await client.get("/", allow_redirects=False)
    assert gone.status == 303


async def test_forged_or_tampered_cookie_is_ignored(client: Client, sessions: sessionmaker[Session]) -> None:
    seed_tree(sessions)
    seed_user(sessions, "lan", UserRole.SUPERVISOR, "HN-BD")
    await log_in(client, "lan")
    value = client.session.cookie_jar.filter_cookies(client.make_url("/"))[COOKIE].value
    body, _, signature = value.partition(".")
    for forged in (f"{body}.{signature[:-2]}AA", "garbage", "a.b", "." * 3000):
        answer = await client.get("/", cookies={COOKIE: forged}, allow_redirects=False)
        assert answer.status == 303, forged[:20]


async def test_security_headers_and_languages(client: Client, sessions: sessionmaker[Session]) -> None:
    page = await client.get("/login")
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "'unsafe-inline'" not in csp
    assert "frame-ancestors 'none'" in csp
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Cache-Control"] == "no-store"
    assert "aiohttp" not in page.headers.get("Server", "")
    assert "Python" not in page.headers.get("Server", "")
    html = await page.text()
    assert '<html lang="vi">' in html
    assert "<script" not in html
    assert " style=" not in html
    english = await client.get("/login?lang=en")
    assert '<html lang="en">' in await english.text()
    assert "Log in" in await english.text()
    remembered = await client.get("/login")
    assert '<html lang="en">' in await remembered.text()
    css = await client.get("/static/app.css")
    assert css.status == 200
    assert css.content_type == "text/css"
    assert (await client.get("/static/../settings.py")).status == 404
