"""Messages outside any survey reach the inbox of the unit of the number's latest case, and the
citizen gets one automatic reply a day, by the inbound job on a real database and Redis."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from redis import Redis
from sqlalchemy import select

from config.settings import Settings
from flows.inbox import mask_sender, receive
from flows.intake import submit_cases
from flows.rules import DEFAULT_INBOX_REPLY_ZALO, change_rule
from storage.agencies import get_by_code
from storage.inbound import store_event
from storage.models import (
    Agency,
    AgencyLevel,
    Channel,
    InboxMessage,
    InboxStatus,
    OutboundMessage,
    Route,
    Survey,
    SurveyStatus,
    Timer,
)
from workers.inbound import process
from workers.runtime import Runtime
from workers.timers import fire

MORNING = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)  # 10:00 in Hà Nội
PHONE = "+84912345678"
_ids = iter(range(1, 10_000))


@pytest.fixture
def runtime(any_db_url: str, settings: Settings, redis: Redis) -> Runtime:
    built = Runtime.build(settings.model_copy(update={"DATABASE_URL": any_db_url}))
    with built.sessions() as session, session.begin():
        province = Agency(code="P", name="UBND tỉnh Thử", level=AgencyLevel.PROVINCE)
        session.add(province)
        session.flush()
        session.add(
            Agency(code="P-A", name="UBND phường An", level=AgencyLevel.COMMUNE, parent_id=province.id)
        )
        session.add(
            Agency(code="P-B", name="UBND phường Bình", level=AgencyLevel.COMMUNE, parent_id=province.id)
        )
    return built


def _case(runtime: Runtime, code: str, closed_at: datetime, phone: str = PHONE) -> None:
    case = {"case_id": f"{code}-{next(_ids)}", "agency_code": code, "procedure_code": "1.001612",
            "phone": phone, "closed_at": closed_at.isoformat()}  # fmt: skip
    with runtime.sessions() as session, session.begin():
        submit_cases(session, runtime.vault, runtime.settings, [case], closed_at)


def _sms(runtime: Runtime, text: str, now: datetime, phone: str = PHONE) -> tuple[str, list[int]]:
    params = {"from": phone.removeprefix("+"), "to": "8040", "text": text, "id": f"mo-{next(_ids)}"}
    with runtime.sessions() as session, session.begin():
        stored = store_event(
            session,
            provider="kannel",
            kind="mo",
            provider_id=params["id"],
            payload_enc=runtime.vault.encrypt(json.dumps(params)),
            sender_hash=runtime.vault.lookup_hash(phone),
        )
    return process(runtime, stored.event_id, now)


def test_message_without_survey_goes_to_the_latest_case_unit_with_one_reply_a_day(
    runtime: Runtime,
) -> None:
    _case(runtime, "P-A", MORNING - timedelta(days=40))
    _case(runtime, "P-B", MORNING - timedelta(days=35))  # the latest: phường Bình
    with runtime.sessions() as session, session.begin():
        # Its survey is over, so the next message belongs to no survey.
        for survey in session.scalars(select(Survey)).all():
            survey.status = SurveyStatus.COMPLETED
        ward = get_by_code(session, "P-B")
        assert ward is not None
        change_rule(session, ward, "inbox_reply", "So nay chi nhan khao sat. Hoi ho so: goi {agency}.",
                    actor="test", now=MORNING)  # fmt: skip

    result, first_reply = _sms(runtime, "Cho hoi ho so cua toi den dau roi?", MORNING)
    assert result.startswith("inbox ")
    assert len(first_reply) == 1
    assert _sms(runtime, "Alo? Sao khong ai tra loi", MORNING + timedelta(hours=3))[1] == []
    assert len(_sms(runtime, "Hom nay thi sao?", MORNING + timedelta(days=1))[1]) == 1

    with runtime.sessions() as session:
        messages = session.scalars(select(InboxMessage).order_by(InboxMessage.id)).all()
        ward = get_by_code(session, "P-B")
        assert ward is not None
        assert [m.agency_id for m in messages] == [ward.id] * 3
        assert [m.status for m in messages] == [InboxStatus.NEW] * 3
        assert runtime.vault.decrypt(messages[0].sender_enc) == PHONE
        replies = session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)).all()
        assert [r.text for r in replies][-2:] == [
            "So nay chi nhan khao sat. Hoi ho so: goi UBND phuong Binh."
        ] * 2
        assert replies[-2].id == first_reply[0]


def test_a_number_without_any_case_is_kept_unassigned(runtime: Runtime) -> None:
    result, reply = _sms(runtime, "Xin chao", MORNING, phone="+84987654321")
    assert result.startswith("inbox ")
    with runtime.sessions() as session:
        message = session.scalars(select(InboxMessage)).one()
        assert message.agency_id is None
        text = session.get(OutboundMessage, reply[0]).text  # type: ignore[union-attr]
    assert "co quan giai quyet ho so" in text
    assert len(text) <= 160


def test_replies_in_a_survey_never_reach_the_inbox(runtime: Runtime) -> None:
    _case(runtime, "P-A", MORNING)
    with runtime.sessions() as session:
        timer = session.scalars(select(Timer)).one()
    fire(runtime, timer.id, MORNING)
    result, _queued = _sms(runtime, "5", MORNING + timedelta(minutes=1))
    assert result.startswith("survey ")
    with runtime.sessions() as session:
        assert session.scalars(select(InboxMessage)).all() == []


def test_masked_sender() -> None:
    assert mask_sender("+84912345678") == "091••••678"
    assert mask_sender("8040") == "••••"


def test_a_zalo_message_goes_to_the_unit_of_the_users_latest_case_with_a_zalo_reply(runtime: Runtime) -> None:
    case = {
        "case_id": "ZL-1",
        "agency_code": "P-B",
        "procedure_code": "1.001612",
        "zalo_user_id": "4411223344556677",
        "closed_at": (MORNING - timedelta(days=9)).isoformat(),
    }
    with runtime.sessions() as session, session.begin():
        submit_cases(session, runtime.vault, runtime.settings, [case], MORNING - timedelta(days=9))
        event = store_event(
            session,
            provider="zalo_oa",
            kind="user_send_text",
            provider_id="z-1",
            payload_enc=runtime.vault.encrypt("{}"),
            sender_hash=None,
        )
        received = receive(
            session,
            runtime.settings,
            runtime.vault,
            inbound_event_id=event.event_id,
            sender="4411223344556677",
            sender_hash=runtime.vault.lookup_hash("4411223344556677"),
            text="Cho hỏi giờ làm việc?",
            channel=Channel.ZALO,
            now=MORNING,
        )
        message = session.get(InboxMessage, received.message_id)
        assert message is not None
        ward = get_by_code(session, "P-B")
        assert ward is not None
        assert message.agency_id == ward.id
        # Answered on the OA, in Vietnamese with its diacritics (Zalo is not SMS).
        [reply_id] = received.outbox_ids
        reply = session.get(OutboundMessage, reply_id)
        assert reply is not None
        assert (reply.channel, reply.route) == (Channel.ZALO, Route.ZALO_OA)
        assert runtime.vault.decrypt(reply.recipient_enc) == "4411223344556677"
        assert reply.text == DEFAULT_INBOX_REPLY_ZALO.format(agency="UBND phường Bình")
    assert mask_sender("4411223344556677", Channel.ZALO) == "Zalo •••677"
