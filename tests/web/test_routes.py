"""Every route of the app is either behind log-in with a role check or public on purpose: walk the
route table, then ask each protected route without a session and with a too-weak role."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from redis import Redis
from sqlalchemy.orm import Session, sessionmaker

from bot.app import create_app
from bot.context import AppContext
from bot.web.access import PUBLIC_ROUTES, access_of
from config.settings import PROJECT_ROOT, Settings
from storage.crypto import PhoneVault
from storage.models import UserRole
from tests.support.app import Client, RecordingDispatcher, app_client
from tests.web.support import log_in, seed_tree, seed_user


@pytest.fixture
def dev_settings(settings: Settings) -> Settings:
    """Development mode: the simulator page is served too, so its access is checked as well."""
    return settings.model_copy(update={"SIPAS_ENV": "development"})


@pytest.fixture
async def dev_client(
    dev_settings: Settings, sessions: sessionmaker[Session], vault: PhoneVault, redis: Redis
) -> AsyncIterator[Client]:
    async with app_client(dev_settings, sessions, vault, redis, RecordingDispatcher()) as test_client:
        yield test_client


def _routes(
    settings: Settings, sessions: sessionmaker[Session], vault: PhoneVault, redis: Redis
) -> list[web.AbstractRoute]:
    context = AppContext(
        settings=settings, sessions=sessions, vault=vault, redis=redis, dispatcher=RecordingDispatcher()
    )
    app = create_app(context)
    return [r for r in app.router.routes() if r.method != "HEAD"]


def _path(route: web.AbstractRoute) -> str:
    assert route.resource is not None
    return route.resource.canonical


def _example(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


def test_every_route_is_guarded_or_public_on_purpose(
    dev_settings: Settings, sessions: sessionmaker[Session], vault: PhoneVault, redis: Redis
) -> None:
    undeclared = []
    for route in _routes(dev_settings, sessions, vault, redis):
        access = access_of(route.handler)
        key = (_path(route), route.method)
        if access is None:
            if key not in PUBLIC_ROUTES:
                undeclared.append(key)
        elif access.is_public:
            assert access.reason, f"{key} is public without a reason"
    assert undeclared == [], "routes with neither require_role/public nor an entry in PUBLIC_ROUTES"


def test_simulator_only_in_development(
    settings: Settings,
    dev_settings: Settings,
    sessions: sessionmaker[Session],
    vault: PhoneVault,
    redis: Redis,
) -> None:
    assert settings.SIPAS_ENV == "production"
    production = {_path(r) for r in _routes(settings, sessions, vault, redis)}
    development = {_path(r) for r in _routes(dev_settings, sessions, vault, redis)}
    assert "/simulator" not in production
    assert "/simulator" in development


async def test_protected_routes_answer_303_to_login_without_a_session(
    dev_client: Client,
    dev_settings: Settings,
    sessions: sessionmaker[Session],
    vault: PhoneVault,
    redis: Redis,
) -> None:
    checked = 0
    for route in _routes(dev_settings, sessions, vault, redis):
        access = access_of(route.handler)
        if access is None or access.is_public:
            continue
        path = _example(_path(route))
        answer = await dev_client.request(route.method, path, allow_redirects=False)
        assert answer.status == 303, (route.method, path, answer.status)
        assert answer.headers["Location"].startswith("/login"), (route.method, path)
        checked += 1
    assert checked >= 5


async def test_roles_are_checked(
    dev_client: Client,
    dev_settings: Settings,
    sessions: sessionmaker[Session],
    vault: PhoneVault,
    redis: Redis,
) -> None:
    seed_tree(sessions)
    seed_user(sessions, "giamsat", UserRole.SUPERVISOR, "HN-BD")
    csrf = await log_in(dev_client, "giamsat")
    refused = 0
    for route in _routes(dev_settings, sessions, vault, redis):
        access = access_of(route.handler)
        if access is None or access.is_public or UserRole.SUPERVISOR in access.roles:
            continue
        path = _example(_path(route))
        data = {"csrf_token": csrf} if route.method == "POST" else None
        answer = await dev_client.request(route.method, path, data=data, allow_redirects=False)
        assert answer.status == 403, (route.method, path, answer.status)
        refused += 1
    assert refused >= 3  # /users, /audit, adding and disabling accounts at least


def test_every_page_is_listed_in_docs(
    dev_settings: Settings, sessions: sessionmaker[Session], vault: PhoneVault, redis: Redis
) -> None:
    """Pages are HTML, not part of the JSON API in docs/openapi.yaml: docs/pages.md lists them."""
    text = (PROJECT_ROOT / "docs" / "pages.md").read_text(encoding="utf-8")
    missing = set()
    for route in _routes(dev_settings, sessions, vault, redis):
        access = access_of(route.handler)
        documented = f"`{route.method} {_path(route)}`" in text
        if access is not None and not _path(route).startswith("/static/") and not documented:
            missing.add(f"{route.method} {_path(route)}")
    assert missing == set()
