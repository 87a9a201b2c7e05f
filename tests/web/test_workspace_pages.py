"""The staff workspace through the real app: agencies and rules with their origin, the flow editor
(problems at their lines, try it, publish, roll back), the inbox (masked, handled, forwarded by
e-mail to a real local SMTP server); every change audited, other units out of reach."""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import Message

import pytest
from aiohttp import FormData
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope
from aiosmtpd.smtp import Session as SmtpSession
from redis import Redis
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.context import JobDispatcher
from config.settings import PROJECT_ROOT, Settings
from storage.agencies import get_by_code
from storage.audit import verify
from storage.crypto import PhoneVault
from storage.inbound import store_event
from storage.models import AuditEntry, FlowAssignment, InboxMessage, InboxStatus, StaffPhone, UserRole
from storage.rules import rules_of
from tests.support.app import Client, app_client
from tests.web.support import csrf_of, log_in, seed_tree, seed_user

SHIPPED = (PROJECT_ROOT / "config" / "flows" / "sipas-sms.yaml").read_text(encoding="utf-8")


class Capture:
    def __init__(self) -> None:
        self.mails: list[Message] = []

    async def handle_DATA(self, server: SMTP, session: SmtpSession, envelope: Envelope) -> str:
        self.mails.append(message_from_bytes(envelope.content))  # type: ignore[arg-type]
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Capture, int]]:
    handler = Capture()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@pytest.fixture
async def staff(
    settings: Settings,
    sessions: sessionmaker[Session],
    vault: PhoneVault,
    redis: Redis,
    dispatcher: JobDispatcher,
    smtp: tuple[Capture, int],
) -> AsyncIterator[tuple[Client, str]]:
    """Staff of the province HN logged in; the app mails through the local SMTP server."""
    mailing = settings.model_copy(
        update={
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": smtp[1],
            "SMTP_FROM": "sipas@hanoi.gov.vn",
            "SMTP_STARTTLS": False,
        }
    )
    seed_tree(sessions)
    seed_user(sessions, "minh", UserRole.STAFF, "HN")
    seed_user(sessions, "lan", UserRole.STAFF, "HN-BD")
    async with app_client(mailing, sessions, vault, redis, dispatcher) as client:
        yield client, await log_in(client, "minh")


def _audit(sessions: sessionmaker[Session]) -> list[tuple[str, str]]:
    with sessions() as session:
        assert verify(session) is None
        entries = session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        return [(e.action, e.target) for e in entries if not e.action.startswith("users.")]


async def test_rules_inherit_and_show_their_origin(
    staff: tuple[Client, str], sessions: sessionmaker[Session]
) -> None:
    client, csrf = staff
    tree = await (await client.get("/agencies")).text()
    assert "Phường Ba Đình" in tree
    assert "Sở Nội vụ" in tree
    answer = await client.post(
        "/agencies/HN/rules",
        data={"csrf_token": csrf, "rule": "holidays", "value": "2026-09-02", "action": "set"},
    )
    assert answer.status == 200
    ward = await (await client.get("/agencies/HN-BD")).text()
    assert "kế thừa từ Thành phố Hà Nội (HN)" in ward
    await client.post(
        "/agencies/HN-BD/rules",
        data={"csrf_token": csrf, "rule": "send_window", "value": "08:00-17:00", "action": "set"},
    )
    ward = await (await client.get("/agencies/HN-BD?lang=en")).text()
    assert "set here" in ward
    province = await (await client.get("/agencies/HN?lang=en")).text()
    assert "default: SIPAS_SEND_WINDOW" in province
    assert "08:00-17:00" not in province
    bad = await client.post(
        "/agencies/HN-BD/rules",
        data={"csrf_token": csrf, "rule": "send_window", "value": "25:00-26:00", "action": "set"},
    )
    assert bad.status == 422
    assert "send_window" in await bad.text()
    await client.post(
        "/agencies/HN-BD/rules", data={"csrf_token": csrf, "rule": "send_window", "action": "unset"}
    )
    assert _audit(sessions) == [
        ("rules.set", "agency:HN:holidays"),
        ("rules.set", "agency:HN-BD:send_window"),
        ("rules.unset", "agency:HN-BD:send_window"),
    ]


async def test_units_added_edited_merged_and_out_of_reach(
    staff: tuple[Client, str],
    sessions: sessionmaker[Session],
    settings: Settings,
    vault: PhoneVault,
    redis: Redis,
    dispatcher: JobDispatcher,
) -> None:
    client, csrf = staff
    added = await client.post(
        "/agencies",
        data={
            "csrf_token": csrf,
            "code": "HN-TH",
            "name": "Phường Tây Hồ",
            "level": "commune",
            "parent": "HN",
        },
        allow_redirects=False,
    )
    assert added.status == 303
    await client.post(
        "/agencies/HN-TH",
        data={"csrf_token": csrf, "name": "Phường Tây Hồ mới", "level": "commune", "parent": "HN"},
    )
    merged = await client.post(
        "/agencies/HN-HK/status", data={"csrf_token": csrf, "valid_to": "2025-07-01", "successor": "HN-BD"}
    )
    assert merged.status == 200
    assert "đã sáp nhập vào HN-BD" in await (await client.get("/agencies")).text()
    await client.post("/agencies/HN-BD/staff", data={"csrf_token": csrf, "phone": "0912 345 678"})
    assert "1 số đã đăng ký" in await (await client.get("/agencies/HN-BD")).text()
    with sessions() as session:
        staff_add = session.scalars(select(AuditEntry).where(AuditEntry.action == "staff.add")).one()
        assert staff_add.after == {"phone": "091••••678"}  # never the number itself
    assert [a for a, _t in _audit(sessions)] == [
        "agencies.add",
        "agencies.update",
        "agencies.merge",
        "staff.add",
    ]

    # Staff of one ward cannot reach its sibling or its parent.
    async with app_client(settings, sessions, vault, redis, dispatcher) as other:
        token = await log_in(other, "lan")
        assert (await other.get("/agencies/HN-HK")).status == 404
        refused = await other.post(
            "/agencies/HN/rules",
            data={"csrf_token": token, "rule": "holidays", "value": "2026-01-01", "action": "set"},
        )
        assert refused.status == 404
        assert "Phường Hoàn Kiếm" not in await (await other.get("/agencies")).text()


async def test_holiday_names_and_the_inherited_list_are_shown(
    staff: tuple[Client, str], sessions: sessionmaker[Session]
) -> None:
    """A ward's own holiday list replaces the province's: its page shows both, with the names."""
    client, csrf = staff
    await client.post(
        "/agencies/HN/rules",
        data={"csrf_token": csrf, "rule": "holidays", "action": "set",
              "value": "2026-09-02 Quốc khánh, 2026-04-30 Giải phóng miền Nam"},
    )  # fmt: skip
    ward = await (await client.get("/agencies/HN-BD")).text()
    assert "2026-04-30 Giải phóng miền Nam, 2026-09-02 Quốc khánh" in ward
    assert "Kế thừa nếu bỏ" not in ward  # nothing set here: the inherited list is the value
    await client.post(
        "/agencies/HN-BD/rules",
        data={"csrf_token": csrf, "rule": "holidays", "value": "2026-09-01 Nghỉ lễ", "action": "set"},
    )
    ward = await (await client.get("/agencies/HN-BD")).text()
    row = ward[ward.index('data-rule="holidays"') :]
    row = row[: row.index("</tr>")]
    assert "2026-09-01 Nghỉ lễ" in row
    assert (
        "Kế thừa nếu bỏ: 2026-04-30 Giải phóng miền Nam, 2026-09-02 Quốc khánh "
        "(kế thừa từ Thành phố Hà Nội (HN))"
    ) in row
    english = await (await client.get("/agencies/HN-BD?lang=en")).text()
    assert "Inherited if removed: 2026-04-30 Giải phóng miền Nam" in english
    with sessions() as session:
        ward_unit = get_by_code(session, "HN-BD")
        assert ward_unit is not None
        assert rules_of(session, [ward_unit.id])[ward_unit.id]["holidays"] == ["2026-09-01 Nghỉ lễ"]


async def test_staff_numbers_are_listed_masked_and_removed(
    staff: tuple[Client, str], sessions: sessionmaker[Session], vault: PhoneVault
) -> None:
    client, csrf = staff
    with sessions() as session, session.begin():
        ward = get_by_code(session, "HN-BD")
        assert ward is not None
        # Registered before numbers were kept encrypted: only the hash.
        session.add(StaffPhone(agency_id=ward.id, phone_hash=vault.lookup_hash("+84987000111")))
    await client.post("/agencies/HN-BD/staff", data={"csrf_token": csrf, "phone": "0912 345 678"})
    page = await (await client.get("/agencies/HN-BD")).text()
    assert "2 số đã đăng ký" in page
    assert "091••••678" in page
    assert "(số cũ, chỉ có mã băm)" in page
    assert "0912345678" not in page
    assert (
        "(older number, only its hash is kept)" in await (await client.get("/agencies/HN-BD?lang=en")).text()
    )
    with sessions() as session:
        rows = {
            vault.decrypt(r.phone_enc) if r.phone_enc else None: r.id
            for r in session.scalars(select(StaffPhone))
        }
    assert set(rows) == {"+84912345678", None}

    no_csrf = await client.post("/agencies/HN-BD/staff/remove", data={"id": str(rows[None])})
    assert no_csrf.status == 403
    other_unit = await client.post(
        "/agencies/HN-HK/staff/remove", data={"csrf_token": csrf, "id": str(rows[None])}
    )
    assert other_unit.status == 422  # not a number of that unit: nothing removed
    removed = await client.post(
        "/agencies/HN-BD/staff/remove",
        data={"csrf_token": csrf, "id": str(rows[None])},
        allow_redirects=False,
    )
    assert removed.status == 303
    await client.post(
        "/agencies/HN-BD/staff/remove", data={"csrf_token": csrf, "id": str(rows["+84912345678"])}
    )
    page = await (await client.get("/agencies/HN-BD?lang=vi")).text()
    assert "0 số đã đăng ký" in page
    with sessions() as session:
        assert session.scalars(select(StaffPhone)).all() == []
        removals = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "staff.remove").order_by(AuditEntry.id)
        ).all()
        assert [(e.target, e.before, e.after) for e in removals] == [
            ("agency:HN-BD", {"phone": "(số cũ, chỉ có mã băm)"}, None),
            ("agency:HN-BD", {"phone": "091••••678"}, None),
        ]


async def test_flow_editor_inline_problems_try_publish_and_roll_back(
    staff: tuple[Client, str], sessions: sessionmaker[Session]
) -> None:
    client, csrf = staff
    page = await client.get("/flows/edit?name=sipas-sms")
    assert page.status == 200
    assert "Kịch bản hợp lệ." in await page.text()
    broken = SHIPPED.replace("criterion: overall", "criterion: overal", 1)
    line = next(n for n, text in enumerate(broken.splitlines(), 1) if "criterion: overal" in text)
    checked = await client.post(
        "/flows/edit", data={"csrf_token": csrf, "name": "sipas-sms", "source": broken, "action": "check"}
    )
    html = await checked.text()
    assert checked.status == 422
    assert f'<span class="issue" data-line="{line}">' in html
    assert "không có tiêu chí &#39;overal&#39;" in html  # the page's language: Vietnamese by default
    english = await client.post(
        "/flows/edit?lang=en",
        data={"csrf_token": csrf, "name": "sipas-sms", "source": broken, "action": "check"},
    )
    assert "unknown criterion &#39;overal&#39;" in await english.text()
    await client.get("/flows?lang=vi")  # the language chosen is remembered: back to Vietnamese
    refused = await client.post(
        "/flows/edit",
        data={
            "csrf_token": csrf,
            "name": "sipas-sms",
            "source": broken,
            "action": "publish",
            "confirm": "yes",
            "scope": "HN",
        },
    )
    assert refused.status == 422

    tried = await client.post(
        "/flows/edit",
        data={
            "csrf_token": csrf,
            "name": "sipas-sms",
            "source": SHIPPED,
            "action": "try",
            "channel": "sms",
            "language": "vi",
            "replies": "5\nrat hai long\nkhong",
        },
    )
    html = await tried.text()
    assert tried.status == 200
    assert 'class="msg citizen"' in html
    assert "1 tin SMS" in html
    assert "ký tự" in html

    unconfirmed = await client.post(
        "/flows/edit",
        data={"csrf_token": csrf, "name": "sipas-sms", "source": SHIPPED, "action": "publish", "scope": "HN"},
    )
    assert unconfirmed.status == 422
    edited = SHIPPED.replace("Cam on", "Xin cam on", 1)
    published = await client.post(
        "/flows/edit",
        data={
            "csrf_token": csrf,
            "name": "sipas-sms",
            "source": edited,
            "action": "publish",
            "confirm": "yes",
            "scope": "HN",
        },
        allow_redirects=False,
    )
    assert published.status == 303, await published.text()
    listing = await (await client.get("/flows")).text()
    assert "sipas-sms v1" in listing
    # Staff may not change the default for everyone.
    default = await client.post(
        "/flows/edit",
        data={
            "csrf_token": csrf,
            "name": "sipas-sms",
            "source": edited,
            "action": "publish",
            "confirm": "yes",
            "scope": "",
        },
    )
    assert default.status == 422
    # Publish the shipped text as v2 for HN, then roll HN back to v1.
    await client.post(
        "/flows/edit",
        data={
            "csrf_token": csrf,
            "name": "sipas-sms",
            "source": SHIPPED,
            "action": "publish",
            "confirm": "yes",
            "scope": "HN",
        },
    )
    back = await client.post(
        "/flows/live",
        data={
            "csrf_token": csrf,
            "name": "sipas-sms",
            "version": "1",
            "channel": "sms",
            "scope": "HN",
            "confirm": "yes",
        },
        allow_redirects=False,
    )
    assert back.status == 303
    with sessions() as session:
        live = session.scalars(select(FlowAssignment).order_by(FlowAssignment.id.desc())).first()
        assert live is not None
        assert live.flow_version.version == 1
    assert [a for a, _t in _audit(sessions)] == ["flows.publish", "flows.publish", "flows.rollback"]
    # The live version is marked, with where it is used; the other one is not.
    listing = await (await client.get("/flows?lang=vi")).text()
    assert listing.count('<tr class="live">') == 1
    assert 'v1 <span class="badge ok live-mark"' in listing
    assert "v2 <span" not in listing
    assert "HN · SMS" in listing
    opened = await (await client.get("/flows/edit?name=sipas-sms&version=1&lang=vi")).text()
    assert 'id="live-places"' in opened
    assert "HN · SMS" in opened
    assert 'id="live-places"' not in await (await client.get("/flows/edit?name=sipas-sms&version=2")).text()


async def test_inbox_masked_handled_and_forwarded(
    staff: tuple[Client, str], sessions: sessionmaker[Session], vault: PhoneVault, smtp: tuple[Capture, int]
) -> None:
    client, csrf = staff
    with sessions() as session, session.begin():
        ward = get_by_code(session, "HN-BD")
        assert ward is not None
        ids = []
        for n, text in enumerate(
            ["Cho hỏi hồ sơ của tôi đến đâu rồi? CCCD 001099012345", "<script>x()</script>"]
        ):
            event = store_event(
                session,
                provider="kannel",
                kind="mo",
                provider_id=f"in-{n}",
                payload_enc=vault.encrypt("{}"),
                sender_hash=vault.lookup_hash("+84912345678"),
            )
            message = InboxMessage(
                inbound_event_id=event.event_id,
                agency_id=ward.id,
                channel="sms",
                sender_enc=vault.encrypt("+84912345678"),
                sender_hash="h",
                text=text,
                status=InboxStatus.NEW,
                received_at=datetime.now(UTC),
            )
            session.add(message)
            session.flush()
            ids.append(message.id)
    html = await (await client.get("/inbox")).text()
    assert "091••••678" in html
    assert "0912345678" not in html
    assert "[CCCD]" in html
    assert "&lt;script&gt;" in html
    no_desk = await client.post(f"/inbox/{ids[0]}", data={"csrf_token": csrf, "action": "forward"})
    assert no_desk.status == 422
    await client.post(
        "/agencies/HN/rules",
        data={"csrf_token": csrf, "rule": "desk_email", "value": "pakn@hanoi.gov.vn", "action": "set"},
    )
    forwarded = await client.post(
        f"/inbox/{ids[0]}", data={"csrf_token": csrf, "action": "forward"}, allow_redirects=False
    )
    assert forwarded.status == 303
    [mail] = smtp[0].mails
    assert mail["To"] == "pakn@hanoi.gov.vn"
    body = mail.get_payload(decode=True).decode("utf-8")  # type: ignore[union-attr]
    assert "+84912345678" in body  # the desk answers the citizen
    assert "Cho hỏi hồ sơ" in body
    assert re.search(r"lúc \d\d:\d\d ngày \d\d/\d\d/\d{4} ", body)  # the desk's local time
    assert "UTC" not in body
    await client.post(f"/inbox/{ids[1]}", data={"csrf_token": csrf, "action": "handled"})
    with sessions() as session:
        statuses = [session.get(InboxMessage, i).status for i in ids]  # type: ignore[union-attr]
    assert statuses == [InboxStatus.FORWARDED, InboxStatus.HANDLED]
    assert [a for a, _t in _audit(sessions)][-2:] == ["inbox.forward", "inbox.handled"]
    assert csrf_of(await (await client.get("/inbox?status=all")).text())


async def test_rules_file_import_is_all_or_nothing(
    staff: tuple[Client, str], sessions: sessionmaker[Session]
) -> None:
    client, csrf = staff

    def upload(text: str) -> FormData:
        form = FormData()
        form.add_field("csrf_token", csrf)
        form.add_field("file", text.encode("utf-8"), filename="rules.yaml", content_type="application/x-yaml")
        return form

    bad = await client.post(
        "/agencies/import", data=upload("rules:\n  HN:\n    sampling: 2\n  HN-XX:\n    expiry: 1d\n")
    )
    html = await bad.text()
    assert bad.status == 422
    assert "HN-XX: not in the agency registry" in html
    assert "sampling" in html
    good = await client.post(
        "/agencies/import",
        data=upload("rules:\n  HN:\n    holidays: [2026-09-02]\n  HN-BD:\n    reminder_after: 12h\n"),
        allow_redirects=False,
    )
    assert good.status == 303
    ward = await (await client.get("/agencies/HN-BD")).text()
    assert "12h" in ward
    assert "2026-09-02" in ward
    assert _audit(sessions) == [
        ("rules.set", "agency:HN:holidays"),
        ("rules.set", "agency:HN-BD:reminder_after"),
    ]


async def test_registry_file_import_within_the_accounts_units(
    staff: tuple[Client, str], sessions: sessionmaker[Session]
) -> None:
    client, csrf = staff

    def upload(text: str, name: str) -> FormData:
        form = FormData()
        form.add_field("csrf_token", csrf)
        form.add_field("file", text.encode("utf-8"), filename=name, content_type="text/plain")
        return form

    outside = "code,name,parent_code,level\nHCM,Thành phố Hồ Chí Minh,,province\n"
    refused = await client.post("/agencies/import", data=upload(outside, "units.csv"))
    assert refused.status == 422
    assert "HCM: its parent must be one of this account" in await refused.text()
    wrong = "code,name,parent_code,level\nHN-TH,Phường Tây Hồ,HN-XX,commune\n"
    assert (
        "line 2: parent_code &#39;HN-XX&#39;"
        in await (await client.post("/agencies/import", data=upload(wrong, "units.csv"))).text()
    )
    good = (
        "agencies:\n  - {code: HN-TH, name: Phường Tây Hồ, parent_code: HN, level: commune}\n"
        "  - {code: HN-HK, name: Phường Hoàn Kiếm, parent_code: HN, level: commune, valid_to: 2025-07-01,"
        " successor_code: HN-TH}\n"
    )
    done = await client.post("/agencies/import", data=upload(good, "units.yaml"), allow_redirects=False)
    assert done.status == 303
    tree = await (await client.get("/agencies")).text()
    assert "Phường Tây Hồ" in tree
    assert "đã sáp nhập vào HN-TH" in tree
    # The new ward; the old one closed, then (once its successor exists) merged into it.
    assert _audit(sessions) == [
        ("agencies.add", "agency:HN-TH"),
        ("agencies.update", "agency:HN-HK"),
        ("agencies.update", "agency:HN-HK"),
    ]
