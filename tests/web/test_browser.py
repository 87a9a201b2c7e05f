"""The pages in a real browser: Debian's headless Chromium driven by Playwright against the real
app on scored data. Screenshots of the main pages go to var/artifacts/screenshots (see
tests/support/browser.py); a few of them are copied into docs/screenshots for the README."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from playwright.async_api import Browser, Page, async_playwright
from redis import Redis
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings, get_settings
from storage.crypto import PhoneVault
from storage.models import AuditEntry, UserRole
from tests.conftest import SECRET_KEY
from tests.support.app import Client, RecordingDispatcher, app_client
from tests.support.browser import ensure_chromium, launch, save_screenshot
from tests.support.services import require_or_skip
from tests.web.seed import seed_scores, seeded_period
from tests.web.support import PASSWORD, seed_user
from workers.cli import cli

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1366, "height": 900}


@pytest.fixture
def page_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"SIPAS_MIN_RESPONSES": 5})


@pytest.fixture
async def server(
    page_settings: Settings, sessions: sessionmaker[Session], vault: PhoneVault, redis: Redis
) -> AsyncIterator[Client]:
    seed_scores(sessions, page_settings.tz)
    seed_user(sessions, "tinh", UserRole.SUPERVISOR, "HN")
    seed_user(sessions, "badinh", UserRole.SUPERVISOR, "HN-BD")
    seed_user(sessions, "quantri", UserRole.ADMIN, None)
    async with app_client(page_settings, sessions, vault, redis, RecordingDispatcher()) as test_client:
        yield test_client


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    require_or_skip(
        ensure_chromium() is not None, "Debian's chromium is not installed (apt-get install chromium)"
    )
    async with async_playwright() as playwright:
        launched = await launch(playwright)
        yield launched
        await launched.close()


def _base(server: Client) -> str:
    return str(server.make_url("")).rstrip("/")


async def _log_in(
    page: Page, base: str, username: str, password: str = PASSWORD, next_path: str = "/"
) -> None:
    await page.goto(f"{base}/login?next={next_path}")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", password)
    await page.click("button[type=submit].primary")


async def test_province_supervisor_sees_the_ranking_and_a_unit_page(
    server: Client, browser: Browser, page_settings: Settings
) -> None:
    base, period = _base(server), seeded_period(page_settings.tz)
    context = await browser.new_context(viewport=DESKTOP, locale="vi-VN")
    page = await context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    await page.goto(f"{base}/")
    assert page.url.startswith(f"{base}/login?next=")
    await save_screenshot(page, "login")
    await _log_in(page, base, "tinh", next_path=f"/?period={period}")
    await page.wait_for_selector("h1")
    assert "Thành phố Hà Nội" in await page.inner_text("h1")
    ranking = page.locator("section.card", has_text="Xếp hạng đơn vị trực thuộc")
    names = await ranking.locator("tbody td:nth-child(2) a").all_inner_texts()
    assert names[:2] == ["Phường Ba Đình", "Sở Nội vụ"] or names[0] == "Phường Ba Đình"
    assert set(names) == {"Phường Ba Đình", "Phường Hoàn Kiếm", "Sở Nội vụ"}
    assert await page.locator("svg.chart").count() >= 5
    await save_screenshot(page, "dashboard-province")

    await ranking.get_by_role("link", name="Phường Hoàn Kiếm").click()
    await page.wait_for_url("**agency=HN-HK**")
    assert "Phường Hoàn Kiếm" in await page.inner_text("h1")
    comment = page.locator("blockquote.comment .text").first
    shown = await comment.inner_text()
    assert "<script>alert('xss')</script>" in shown  # shown as text
    assert "0912345678" not in shown  # masked
    assert dialogs == []  # and never run
    await save_screenshot(page, "dashboard-ward")

    phone = await browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True)
    small = await phone.new_page()
    await _log_in(small, base, "tinh", next_path=f"/?period={period}")
    await small.wait_for_selector("h1")
    width = await small.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"] + 1, f"the page scrolls sideways on a phone ({width}px)"
    # The charts drawn for a phone's width are the ones shown, so their text is not shrunk.
    assert await small.locator("svg.chart.trend.narrow").first.is_visible()
    assert not await small.locator("svg.chart.trend:not(.narrow)").first.is_visible()
    assert await small.locator("svg.chart.bars.narrow").first.is_visible()
    await save_screenshot(small, "dashboard-phone")
    await save_screenshot(small, "dashboard-phone-top", full_page=False)
    await phone.close()
    await context.close()


async def test_ward_supervisor_sees_only_its_ward(
    server: Client, browser: Browser, page_settings: Settings
) -> None:
    base, period = _base(server), seeded_period(page_settings.tz)
    context = await browser.new_context(viewport=DESKTOP)
    page = await context.new_page()
    await _log_in(page, base, "badinh", next_path=f"/?period={period}")
    await page.wait_for_selector("h1")
    body = await page.inner_text("body")
    assert "Phường Ba Đình" in body
    assert "Phường Hoàn Kiếm" not in body
    assert "Thành phố Hà Nội" not in body
    options = await page.locator("select[name=agency] option").all_inner_texts()
    assert options == ["Phường Ba Đình"]
    # The menu offers only what a supervisor may open.
    menu = await page.locator("nav.mainnav a").all_inner_texts()
    assert "Tài khoản" not in menu
    assert "Nhật ký thay đổi" not in menu
    answer = await page.goto(f"{base}/?agency=HN&period={period}")
    assert answer is not None
    assert answer.status == 404
    await context.close()


async def test_post_without_csrf_token_is_refused(server: Client, browser: Browser) -> None:
    base = _base(server)
    context = await browser.new_context()
    page = await context.new_page()
    await _log_in(page, base, "quantri")
    await page.wait_for_selector("h1")
    # The browser's own session cookie, but no token: what a forged cross-site form would send.
    forged = await context.request.post(
        f"{base}/users",
        form={"username": "ke-gian", "role": "admin", "password": "mat-khau-gia-mao"},
        max_redirects=0,
    )
    assert forged.status == 403
    await page.goto(f"{base}/users")
    assert "ke-gian" not in await page.inner_text("body")
    await save_screenshot(page, "users")
    await context.close()


async def test_lockout_after_repeated_wrong_passwords(server: Client, browser: Browser) -> None:
    base = _base(server)
    page = await (await browser.new_context()).new_page()
    for _ in range(5):
        await _log_in(page, base, "badinh", password="mat-khau-sai-0")
        await page.wait_for_selector("p.alert")
    assert "tạm bị khóa" in await page.inner_text("p.alert")
    await _log_in(page, base, "badinh")  # the right password, while locked
    await page.wait_for_selector("p.alert")
    assert "tạm bị khóa" in await page.inner_text("p.alert")
    assert "/login" in page.url


async def test_audit_page_shows_a_change_made_by_sipas_and_verify_catches_an_edit(
    server: Client,
    browser: Browser,
    db_url: str,
    sessions: sessionmaker[Session],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("SIPAS_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("USER", "vanhanh")
    get_settings.cache_clear()
    runner = CliRunner()
    added = runner.invoke(
        cli,
        [
            "users",
            "add",
            "--username",
            "hoankiem",
            "--role",
            "supervisor",
            "--agency",
            "HN-HK",
            "--password-stdin",
        ],
        input=PASSWORD + "\n",
    )
    assert added.exit_code == 0, added.output

    base = _base(server)
    page = await (await browser.new_context(viewport=DESKTOP)).new_page()
    await _log_in(page, base, "quantri", next_path="/audit")
    await page.wait_for_selector("table.audit")
    first_row = page.locator("table.audit tbody tr").first
    cells = await first_row.locator("td").all_inner_texts()
    assert cells[2:5] == ["cli:vanhanh", "users.add", "user:hoankiem"]
    assert "Chuỗi băm của nhật ký nguyên vẹn." in await page.inner_text("main")
    await save_screenshot(page, "audit")
    assert runner.invoke(cli, ["audit", "verify"]).exit_code == 0

    row_id = int(cells[0])
    with sessions() as s, s.begin():
        s.execute(update(AuditEntry).where(AuditEntry.id == row_id).values(actor="ai-do"))
    verify = runner.invoke(cli, ["audit", "verify"])
    assert verify.exit_code == 1
    assert f"audit row {row_id} is broken" in verify.stderr
    await page.reload()
    assert f"dòng {row_id}" in await page.inner_text("p.alert")
    get_settings.cache_clear()
