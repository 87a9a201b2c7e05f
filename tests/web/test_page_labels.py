"""What a staff member or a supervisor reads on the pages, found walking through them in a browser:
every label in the page's language, numbers with their unit, a reason next to a button that cannot
be used, a way from a unit's rules to its figures and back, empty lists that say why."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import pytest
from redis import Redis
from sqlalchemy.orm import Session, sessionmaker

from bot.context import JobDispatcher
from config.settings import PROJECT_ROOT, Settings
from flows.versions import live_version
from storage.agencies import get_by_code
from storage.crypto import PhoneVault
from storage.inbound import store_event
from storage.models import Channel, Digest, InboxMessage, InboxStatus, UserRole
from tests.support.app import Client, app_client
from tests.web.seed import seed_scores, seeded_period
from tests.web.support import log_in, seed_user


@pytest.fixture
async def app(
    settings: Settings,
    sessions: sessionmaker[Session],
    vault: PhoneVault,
    redis: Redis,
    dispatcher: JobDispatcher,
) -> AsyncIterator[Client]:
    """The province of tests/web/seed.py with scores; staff 'minh' and supervisor 'tinh' of HN."""
    seed_scores(sessions, settings.tz)
    seed_user(sessions, "minh", UserRole.STAFF, "HN")
    seed_user(sessions, "tinh", UserRole.SUPERVISOR, "HN")
    async with app_client(
        settings.model_copy(update={"SIPAS_MIN_RESPONSES": 5}), sessions, vault, redis, dispatcher
    ) as client:
        yield client


def _alert(html: str) -> str:
    found = re.search(r'<p class="alert" role="alert">([^<]*)</p>', html)
    assert found is not None, "no alert on the page"
    return found.group(1)


async def test_a_refused_rule_says_why_in_the_page_language(app: Client) -> None:
    csrf = await log_in(app, "minh")
    form = {"csrf_token": csrf, "rule": "send_window", "value": "8h-17h", "action": "set"}
    refused = await app.post("/agencies/HN-BD/rules", data=form)
    assert refused.status == 422
    assert _alert(await refused.text()) == (
        "Không lưu được quy tắc send_window: giá trị phải có dạng 07:30-21:00 "
        "(a send window must look like 07:30-21:00)."
    )
    # What was typed stays in the box, to be corrected rather than typed again.
    assert re.search(r'aria-label="Khung giờ gửi"[^>]*value="8h-17h"', await refused.text())
    english = await app.post("/agencies/HN-BD/rules?lang=en", data=form)
    assert _alert(await english.text()).startswith(
        "The rule send_window was not saved: write it as 07:30-21:00"
    )

    page = await (await app.get("/agencies/HN-BD?lang=vi")).text()
    # The expected form of the reply rules is in Vietnamese, the units of durations explained,
    # and the unit's own figures one click away.
    assert 'placeholder="không dấu; có thể dùng {agency}"' in page
    assert "unaccented" not in page
    assert "m = phút, h = giờ, d = ngày" in page
    assert '<a href="/?agency=HN-BD" id="unit-dashboard">' in page
    english_page = await (await app.get("/agencies/HN-BD?lang=en")).text()
    assert 'placeholder="unaccented; {agency} allowed"' in english_page


async def test_staff_numbers_form_comes_back_to_its_section(app: Client) -> None:
    csrf = await log_in(app, "minh")
    added = await app.post(
        "/agencies/HN-BD/staff", data={"csrf_token": csrf, "phone": "0912 345 678"}, allow_redirects=False
    )
    assert added.headers["Location"] == "/agencies/HN-BD?done=staff#staff"


async def test_flows_name_the_shipped_flow_in_the_page_language(
    app: Client, sessions: sessionmaker[Session]
) -> None:
    with sessions() as session, session.begin():
        live_version(session, None, Channel.SMS, datetime.now(UTC))  # stores the shipped default
    await log_in(app, "minh")
    page = await (await app.get("/flows?lang=vi")).text()
    assert "kịch bản đi kèm phần mềm" in page
    assert "shipped default" not in page
    assert '<option value="sms">SMS</option>' in page
    assert "shipped with the software" in await (await app.get("/flows?lang=en")).text()


async def test_trying_a_flow_says_where_the_survey_stands(app: Client) -> None:
    csrf = await log_in(app, "minh")
    source = (PROJECT_ROOT / "config" / "flows" / "sipas-sms.yaml").read_text(encoding="utf-8")
    form = {"csrf_token": csrf, "name": "sipas-sms", "source": source, "channel": "sms",
            "language": "vi", "action": "try"}  # fmt: skip
    waiting = await (await app.post("/flows/edit", data={**form, "replies": "5\n4\nthu tuc rac roi"})).text()
    assert "Sau các trả lời trên: khảo sát đang chờ trả lời câu ket_qua." in waiting
    done = await (await app.post("/flows/edit", data={**form, "replies": "5\n5\n5"})).text()
    assert "Sau các trả lời trên: khảo sát đã xong." in done


async def test_inbox_says_why_a_message_cannot_be_forwarded(
    app: Client, sessions: sessionmaker[Session], vault: PhoneVault
) -> None:
    with sessions() as session, session.begin():
        ward = get_by_code(session, "HN-BD")
        assert ward is not None
        event = store_event(
            session,
            provider="kannel",
            kind="mo",
            provider_id="in-labels",
            payload_enc=vault.encrypt("{}"),
            sender_hash=vault.lookup_hash("+84912345678"),
        )
        session.add(
            InboxMessage(
                inbound_event_id=event.event_id,
                agency_id=ward.id,
                channel="sms",
                sender_enc=vault.encrypt("+84912345678"),
                sender_hash="h",
                text="Cho hỏi hồ sơ của tôi đến đâu rồi?",
                status=InboxStatus.NEW,
                received_at=datetime.now(UTC),
            )
        )
    await log_in(app, "minh")
    page = await (await app.get("/inbox?lang=vi")).text()
    # No desk e-mail anywhere above the ward: the button is off and the reason is on the page
    # (not only in a tooltip a phone never shows), with the way to the rule.
    assert "Chưa thể chuyển: đơn vị chưa có thư điện tử của bộ phận PAKN." in page
    assert '<a href="/agencies/HN-BD#rules">Đặt quy tắc desk_email</a>' in page
    assert '<a href="/agencies/HN-BD">HN-BD · Phường Ba Đình</a>' in page
    empty = await (await app.get("/inbox?status=handled")).text()
    assert "Không có tin nhắn nào." in empty


async def test_digests_status_in_words_and_an_empty_archive_explained(
    app: Client, sessions: sessionmaker[Session]
) -> None:
    await log_in(app, "tinh")
    empty = await (await app.get("/digests?lang=vi")).text()
    assert "Chưa có bản tin nào. Bản tin đầu tiên được gửi" in empty
    with sessions() as session, session.begin():
        province = get_by_code(session, "HN")
        assert province is not None
        session.add(
            Digest(day=date(2026, 11, 30), username="tinh", agency_id=province.id, channel="email",
                   status="sent", subject="SIPAS Thành phố Hà Nội", html="<p>x</p>", text="Chỉ số SIPAS")
        )  # fmt: skip
    listing = await (await app.get("/digests")).text()
    assert '<td data-label="Trạng thái">đã gửi</td>' in listing
    assert '<td data-label="Kênh">Thư điện tử</td>' in listing
    assert '<table class="data cards">' in listing  # one card per digest on a phone
    assert ">sent<" not in listing


async def test_dashboard_figures_carry_their_unit(app: Client, settings: Settings) -> None:
    period = seeded_period(settings.tz)
    await log_in(app, "minh")
    page = await (await app.get(f"/?period={period}&lang=vi")).text()
    values = re.findall(r'<div class="value">([^<]*)</div>', page)
    assert values[0].endswith("%")  # the index
    assert values[1].endswith("%")  # overall satisfaction
    assert "Đúng hạn: —<" in page  # no on-time figure: no stray "%"
    assert "Chỉ số SIPAS (%)" in page
    # The value axis of the trends says its unit; the bars' values use the decimal comma.
    assert re.search(r'text-anchor="end">\d+%</text>', page)
    assert re.search(r'<text class="value"[^>]*>\d+,\d', page)
    # Trends and bars are also drawn for a phone's width (app.css shows them there).
    assert page.count('<svg class="chart trend narrow" width="340"') == 2
    assert page.count('<svg class="chart bars narrow" width="340"') == 2
    english = await (await app.get(f"/?period={period}&lang=en")).text()
    assert re.search(r'<text class="value"[^>]*>\d+\.\d', english)
    # Staff go from a unit's figures to its rules; a supervisor has no such page.
    assert '<a href="/agencies/HN" id="unit-rules">' in page
    await app.post("/logout", data={"csrf_token": re.findall(r'name="csrf_token" value="([^"]+)"', page)[0]})
    await log_in(app, "tinh")
    assert 'id="unit-rules"' not in await (await app.get(f"/?period={period}")).text()


async def test_audit_filter_offers_the_kinds_of_change(app: Client) -> None:
    csrf = await log_in(app, "minh")
    await app.post(
        "/agencies/HN-BD/rules",
        data={"csrf_token": csrf, "rule": "send_window", "value": "08:00-17:00", "action": "set"},
    )
    page = await (await app.get("/audit?action=rules.set")).text()
    offered = re.findall(r'<option value="([^"]*)"', page)
    assert offered[0] == ""  # all kinds
    assert {"rules.set", "users.add"} <= set(offered[1:])
    assert '<option value="rules.set" selected>' in page
    assert "agency:HN-BD:send_window" in page
    assert "user:minh" not in page  # filtered to rule changes
