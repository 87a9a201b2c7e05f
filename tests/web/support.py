"""Helpers of the page tests: accounts on a small agency tree, and logging a test client in."""

from __future__ import annotations

import re

from sqlalchemy.orm import Session, sessionmaker

from storage.agencies import AgencyRow, get_by_code, upsert_agency
from storage.models import AgencyLevel, UserRole
from storage.users import add_user
from tests.support.app import Client

PASSWORD = "mat-khau-rat-dai-1"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')

# A province with a department and two wards (two-level local government since 1 July 2025).
TREE = (
    AgencyRow("HN", "Thành phố Hà Nội", AgencyLevel.PROVINCE, None),
    AgencyRow("HN-SNV", "Sở Nội vụ", AgencyLevel.DEPARTMENT, "HN"),
    AgencyRow("HN-BD", "Phường Ba Đình", AgencyLevel.COMMUNE, "HN"),
    AgencyRow("HN-HK", "Phường Hoàn Kiếm", AgencyLevel.COMMUNE, "HN"),
)


def seed_tree(sessions: sessionmaker[Session]) -> None:
    with sessions() as s, s.begin():
        for row in TREE:
            parent = get_by_code(s, row.parent_code) if row.parent_code else None
            upsert_agency(s, row, parent)


def seed_user(sessions: sessionmaker[Session], username: str, role: UserRole, agency: str | None) -> None:
    with sessions() as s, s.begin():
        add_user(
            s,
            actor="test",
            username=username,
            role=role,
            agency=get_by_code(s, agency) if agency else None,
            password=PASSWORD,
        )


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found is not None, "no csrf_token field in the page"
    return found.group(1)


async def log_in(client: Client, username: str, password: str = PASSWORD) -> str:
    """Log in through the form; returns the session's CSRF token (from the next page)."""
    form = await client.get("/login")
    token = csrf_of(await form.text())
    answer = await client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token},
        allow_redirects=False,
    )
    assert answer.status == 303, await answer.text()
    page = await client.get("/")
    return csrf_of(await page.text())
