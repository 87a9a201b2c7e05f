"""The staff workspace in headless Chromium (Debian's /usr/bin/chromium driven by Playwright, the
harness of tests/support/browser.py) on the real app: a flow edited with errors shown at their
lines, fixed, tried, published and audited; a province holiday that makes a ward's case wait for
the next working day; a ward's send window that leaves its parent's alone; a message from a phone
without a survey in its unit's inbox, answered once a day; holiday names and the inherited list a
ward's own list replaces; staff numbers listed masked and removed. Screenshots: workspace-*.png in
var/artifacts/screenshots."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from playwright.async_api import Page, ViewportSize, async_playwright
from redis import Redis
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from config.settings import PROJECT_ROOT, Settings
from flows.intake import submit_cases
from storage.agencies import get_by_code
from storage.crypto import PhoneVault
from storage.models import AuditEntry, InboxMessage, OutboundMessage, StaffPhone, Timer, TimerKind, UserRole
from tests.support.app import Client, RecordingDispatcher, app_client
from tests.support.browser import ensure_chromium, launch, save_screenshot
from tests.support.services import require_or_skip
from tests.web.support import PASSWORD, seed_tree, seed_user
from workers.inbound import process
from workers.runtime import Runtime

SHIPPED = (PROJECT_ROOT / "config" / "flows" / "sipas-sms.yaml").read_text(encoding="utf-8")
DESKTOP: ViewportSize = {"width": 1280, "height": 900}


@pytest.fixture
def runtime(settings: Settings, redis: Redis) -> Runtime:
    return Runtime.build(settings.model_copy(update={"SIPAS_SEND_WINDOW": "07:30-21:00"}))


@pytest.fixture
def dispatcher() -> RecordingDispatcher:
    return RecordingDispatcher()


@pytest.fixture
async def server(
    runtime: Runtime,
    sessions: sessionmaker[Session],
    vault: PhoneVault,
    redis: Redis,
    dispatcher: RecordingDispatcher,
) -> AsyncIterator[Client]:
    seed_tree(sessions)
    seed_user(sessions, "minh", UserRole.STAFF, "HN")
    async with app_client(runtime.settings, sessions, vault, redis, dispatcher) as client:
        yield client


@pytest.fixture
async def page(server: Client) -> AsyncIterator[Page]:
    """A staff member of the province, logged in through the form."""
    require_or_skip(
        ensure_chromium() is not None, "Debian's chromium is not installed (apt-get install chromium)"
    )
    base = str(server.make_url("")).rstrip("/")
    async with async_playwright() as playwright:
        browser = await launch(playwright)
        context = await browser.new_context(base_url=base, viewport=DESKTOP, locale="vi-VN")
        tab = await context.new_page()
        refused: list[str] = []
        # Anything the Content-Security-Policy refused is reported on the console.
        tab.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
        await tab.goto("/login")
        await tab.fill("input[name=username]", "minh")
        await tab.fill("input[name=password]", PASSWORD)
        await tab.click("button[type=submit].primary")
        await tab.wait_for_url(f"{base}/")
        yield tab
        assert refused == []
        await browser.close()


async def _rule(page: Page, code: str, rule: str, value: str) -> None:
    await page.goto(f"/agencies/{code}")
    row = page.locator(f"tr[data-rule='{rule}']")
    await row.locator("input[name=value]").fill(value)
    await row.locator("button[value=set]").click()
    await page.wait_for_url(f"**/agencies/{code}?done=rule*")


async def test_flow_error_inline_fix_try_publish_audit(page: Page, sessions: sessionmaker[Session]) -> None:
    await page.goto("/flows/edit?name=sipas-sms")
    broken = SHIPPED.replace("kind: scale5", "kind: scale7", 1).replace(
        "criterion: ket_qua", "criterion: ket_qa", 1
    )
    await page.locator("textarea[name=source]").fill(broken)
    await page.click("button[value=check]")
    # Both problems at once, each under its own line: the structural one and the one of meaning,
    # in the page's language (Vietnamese by default).
    for needle, says in (
        ("kind: scale7", "phải là một trong"),
        ("criterion: ket_qa", "không có tiêu chí 'ket_qa'"),
    ):
        number = next(n for n, text in enumerate(broken.splitlines(), 1) if needle in text)
        assert says in await page.locator(f"#L{number} .issue").inner_text()
    assert await page.locator("#check-bad").is_visible()
    await save_screenshot(page, "workspace-flow-errors")

    await page.locator("textarea[name=source]").fill(SHIPPED.replace("Cam on", "Xin cam on", 1))
    await page.locator("textarea[name=replies]").fill("5\n3\nthu tuc rac roi\n")
    await page.click("button[value=try]")
    assert await page.locator("#check-ok").is_visible()
    bot_messages = page.locator("#conversation .msg.bot")
    assert await bot_messages.count() >= 3
    assert "1 tin SMS" in await bot_messages.first.inner_text()
    await save_screenshot(page, "workspace-flow-try")

    await page.select_option("select[name=scope]", "HN")
    await page.check("input[name=confirm]")
    await page.click("button[value=publish]")
    await page.wait_for_url("**/flows?done=published*")
    assert "sipas-sms v1" in await page.locator("main").inner_text()
    await page.goto("/audit")
    assert "flows.publish" in await page.locator("table.audit").inner_text()
    await save_screenshot(page, "workspace-audit-publish")
    with sessions() as session:
        assert session.scalars(select(AuditEntry.action).where(AuditEntry.action == "flows.publish")).all()


async def test_province_holiday_and_ward_window(page: Page, runtime: Runtime) -> None:
    today = datetime.now(runtime.settings.tz).date()
    await _rule(page, "HN", "holidays", today.isoformat())
    await _rule(page, "HN-BD", "send_window", "08:00-17:00")
    ward = await page.locator("main").inner_text()
    assert "kế thừa từ Thành phố Hà Nội (HN)" in ward
    tomorrow = (today + timedelta(days=1)).strftime("%d/%m/%Y")
    assert f"08:00 {tomorrow}" in await page.locator("#next-send").inner_text()
    await save_screenshot(page, "workspace-agency-rules")
    await page.goto("/agencies/HN")
    window = page.locator("tr[data-rule='send_window']")
    shown = await window.inner_text()
    assert "07:30-21:00" in shown
    assert "mặc định" in shown

    # A case closed now in a ward of the province waits for the next working day's window.
    now = datetime.now(UTC)
    case = {"case_id": "HD-BROWSER-1", "agency_code": "HN-HK", "procedure_code": "1.001612",
            "phone": "0912000111", "closed_at": now.isoformat()}  # fmt: skip
    with runtime.sessions() as session, session.begin():
        [outcome] = submit_cases(session, runtime.vault, runtime.settings, [case], now)
    with runtime.sessions() as session:
        timer = session.scalars(
            select(Timer).where(Timer.survey_id == outcome.survey_id, Timer.kind == TimerKind.FIRST_MESSAGE)
        ).one()
    due = timer.due_at.astimezone(runtime.settings.tz)
    assert (due.date(), due.strftime("%H:%M")) == (today + timedelta(days=1), "07:30")


async def test_inbox_message_and_one_reply_a_day(
    page: Page, server: Client, runtime: Runtime, dispatcher: RecordingDispatcher
) -> None:
    earlier = datetime.now(UTC) - timedelta(days=40)
    case = {"case_id": "HD-OLD-1", "agency_code": "HN-BD", "procedure_code": "1.001612",
            "phone": "0987 654 321", "closed_at": earlier.isoformat()}  # fmt: skip
    with runtime.sessions() as session, session.begin():
        submit_cases(session, runtime.vault, runtime.settings, [case], earlier)  # stored, too old to ask
    for n, text in enumerate(["Cho hỏi hồ sơ của tôi đến đâu rồi?", "Alo, có ai không?"]):
        params = {"token": runtime.settings.KANNEL_MO_TOKEN, "from": "84987654321", "to": "8040",
                  "text": text, "id": f"mo-browser-{n}"}  # fmt: skip
        assert (await server.get("/webhooks/sms/kannel", params=params)).status == 200
        process(runtime, dispatcher.inbound[-1])
    with runtime.sessions() as session:
        replies = session.scalars(
            select(OutboundMessage).where(OutboundMessage.dedupe_key.startswith("inbox-reply:"))
        ).all()
        assert len(replies) == 1  # exactly one automatic reply in the day
        assert len(session.scalars(select(InboxMessage)).all()) == 2
    await page.goto("/inbox")
    table = await page.locator("table.inbox").inner_text()
    assert "Cho hỏi hồ sơ của tôi đến đâu rồi?" in table
    assert "HN-BD · Phường Ba Đình" in table
    assert "098••••321" in table
    assert "0987654321" not in table
    await save_screenshot(page, "workspace-inbox")
    await page.locator("tr[data-message] button[value=handled]").first.click()
    await page.wait_for_url("**/inbox?status=new&done=handled")
    assert await page.locator("tr[data-message]").count() == 1


async def test_holiday_names_and_the_list_a_ward_replaces(page: Page) -> None:
    await _rule(page, "HN", "holidays", "2026-09-02 Quốc khánh, 2026-04-30 Giải phóng miền Nam")
    await _rule(page, "HN-BD", "holidays", "2026-09-01 Nghỉ lễ, 2026-09-02 Quốc khánh")
    row = page.locator("tr[data-rule='holidays']")
    assert "2026-09-01 Nghỉ lễ, 2026-09-02 Quốc khánh" in await row.locator(".value").inner_text()
    inherited = await row.locator(".inherited").inner_text()
    assert inherited == (
        "Kế thừa nếu bỏ: 2026-04-30 Giải phóng miền Nam, 2026-09-02 Quốc khánh "
        "(kế thừa từ Thành phố Hà Nội (HN))"
    )
    # The box holds the unit's own list, names included, ready to edit.
    assert await row.locator("input[name=value]").input_value() == "2026-09-01 Nghỉ lễ, 2026-09-02 Quốc khánh"
    await save_screenshot(page, "workspace-holidays")
    await row.locator("button[value=unset]").click()
    await page.wait_for_url("**/agencies/HN-BD?done=rule*")
    row = page.locator("tr[data-rule='holidays']")
    assert "2026-04-30 Giải phóng miền Nam" in await row.locator(".value").inner_text()
    assert await row.locator(".inherited").count() == 0


async def test_staff_numbers_listed_masked_and_removed(
    page: Page, sessions: sessionmaker[Session], vault: PhoneVault
) -> None:
    with sessions() as session, session.begin():
        ward = get_by_code(session, "HN-BD")
        assert ward is not None
        session.add(
            StaffPhone(agency_id=ward.id, phone_hash=vault.lookup_hash("+84987000111"))
        )  # before 0014
    await page.goto("/agencies/HN-BD")
    await page.locator("#staff input[name=phone]").fill("0912 345 678")
    await page.locator("#staff button[type=submit]", has_text="Đăng ký").click()
    await page.wait_for_url("**/agencies/HN-BD?done=staff#staff")
    numbers = page.locator("#staff .staff-number")
    assert await numbers.all_inner_texts() == ["(số cũ, chỉ có mã băm)", "091••••678"]
    assert "0912345678" not in await page.locator("main").inner_text()
    await save_screenshot(page, "workspace-staff-numbers")
    await page.get_by_role("button", name="Bỏ số 091••••678").click()
    await page.wait_for_url("**/agencies/HN-BD?done=staff-removed#staff")
    assert await numbers.all_inner_texts() == ["(số cũ, chỉ có mã băm)"]
    await page.get_by_role("button", name="Bỏ số (số cũ, chỉ có mã băm)").click()
    await page.wait_for_url("**/agencies/HN-BD?done=staff-removed#staff")
    assert await numbers.count() == 0
    assert "0 số đã đăng ký" in await page.locator("#staff").inner_text()
    await page.goto("/audit")
    log = await page.locator("table.audit").inner_text()
    assert log.count("staff.remove") == 2
    assert "091••••678" in log
