"""The dashboard's filters in a real browser (Debian's headless Chromium driven by Playwright):
choosing a procedure narrows every figure to the cases of that procedure, and the figures shown
are those of `scores show --procedure` for the same unit and period."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, Page, async_playwright
from redis import Redis
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from flows.scores.render import format_number
from flows.scores.report import build_report
from storage.crypto import PhoneVault
from storage.models import UserRole
from tests.support.app import Client, RecordingDispatcher, app_client
from tests.support.browser import ensure_chromium, launch, save_screenshot
from tests.support.services import require_or_skip
from tests.web.seed import MARRIAGE, seed_scores, seeded_period
from tests.web.support import PASSWORD, seed_user


@pytest.fixture
def page_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"SIPAS_MIN_RESPONSES": 5})


@pytest.fixture
async def server(
    page_settings: Settings, sessions: sessionmaker[Session], vault: PhoneVault, redis: Redis
) -> AsyncIterator[Client]:
    seed_scores(sessions, page_settings.tz)
    seed_user(sessions, "tinh", UserRole.SUPERVISOR, "HN")
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


async def _kpis(page: Page) -> dict[str, str]:
    """The headline figures as shown: label -> value."""
    labels = await page.locator(".kpi .label").all_inner_texts()
    values = await page.locator(".kpi .value").all_inner_texts()
    return dict(zip(labels, values, strict=True))


async def test_the_procedure_filter_narrows_the_figures(
    server: Client, browser: Browser, page_settings: Settings, sessions: sessionmaker[Session]
) -> None:
    base = str(server.make_url("")).rstrip("/")
    period = seeded_period(page_settings.tz)
    with sessions() as session:
        every = build_report(session, period, "HN", settings=page_settings).rows[0].figures
        marriage = build_report(session, period, "HN", settings=page_settings, procedure=MARRIAGE)
    only = marriage.rows[0].figures
    assert 0 < only.n_cases_closed < every.n_cases_closed  # the seed has both procedures

    context = await browser.new_context(viewport={"width": 1366, "height": 900}, locale="vi-VN")
    page = await context.new_page()
    await page.goto(f"{base}/login?next=/?period={period}")
    await page.fill("input[name=username]", "tinh")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit].primary")
    await page.wait_for_selector(".kpi")
    before = await _kpis(page)
    assert before["Hồ sơ đã giải quyết"] == format_number(every.n_cases_closed)
    assert before["Chỉ số SIPAS"] == format_number(round(every.sipas_index or 0, 2)) + "%"
    assert await page.locator("#procedure-filter").count() == 0
    # The filter offers the procedures the counts know, by code with their names.
    offered = await page.locator("datalist#procedures option").evaluate_all(
        "options => options.map(o => o.value + ' ' + o.textContent)"
    )
    assert offered == ["1.001193 Đăng ký kết hôn", "1.001612 Đăng ký khai sinh"]

    await page.fill("input[name=procedure]", MARRIAGE)
    await page.click("form.filters button[type=submit]")
    await page.wait_for_url(f"**procedure={MARRIAGE}**")
    after = await _kpis(page)
    assert after["Hồ sơ đã giải quyết"] == format_number(only.n_cases_closed)
    assert after["Phiếu có trả lời"] == format_number(only.n_responses)
    assert after["Chỉ số SIPAS"] == format_number(round(only.sipas_index or 0, 2)) + "%"
    assert after["Hài lòng chung"] == format_number(round(only.overall_satisfaction or 0, 2)) + "%"
    assert after != before
    badge = await page.inner_text("#procedure-filter")
    assert MARRIAGE in badge
    assert "Đăng ký kết hôn" in badge
    # The child units' ranking is of that procedure too, and the seeded comment (on a birth
    # registration) is not among this procedure's comments.
    ranking = page.locator("section.card", has_text="Xếp hạng đơn vị trực thuộc")
    shown = dict(
        zip(
            await ranking.locator("tbody td:nth-child(2) a").all_inner_texts(),
            await ranking.locator("tbody td:nth-child(3)").all_inner_texts(),
            strict=True,
        )
    )
    expected = {r.unit.name: format_number(r.figures.sipas_index) for r in marriage.rows[1:]}
    assert shown == {name: value for name, value in expected.items() if name in shown}
    assert len(shown) == 3
    assert await page.locator("blockquote.comment").count() == 0
    # The Excel link carries the filter.
    assert f"procedure={MARRIAGE}" in (await page.get_attribute("a[download]", "href") or "")
    await save_screenshot(page, "dashboard-procedure")

    await page.click("text=Bỏ lọc thủ tục")
    await page.wait_for_selector(".kpi")
    assert await _kpis(page) == before
    await context.close()
