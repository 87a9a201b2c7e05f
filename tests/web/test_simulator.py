"""The development phone simulator talks to the service through its real intake API and Kannel
webhook (over HTTP), and shows what the service stored for that phone."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis import Redis
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from storage.crypto import PhoneVault
from storage.models import Case, InboundEvent, OutboundMessage, OutboxStatus, Survey, UserRole
from tests.support.app import Client, RecordingDispatcher, app_client
from tests.web.support import log_in, seed_tree, seed_user


@pytest.fixture
async def dev(
    settings: Settings, sessions: sessionmaker[Session], vault: PhoneVault, redis: Redis
) -> AsyncIterator[tuple[Client, RecordingDispatcher]]:
    dispatcher = RecordingDispatcher()
    dev_settings = settings.model_copy(update={"SIPAS_ENV": "development"})
    async with app_client(dev_settings, sessions, vault, redis, dispatcher) as test_client:
        yield test_client, dispatcher


async def test_close_a_case_and_answer_by_sms(
    dev: tuple[Client, RecordingDispatcher], sessions: sessionmaker[Session], vault: PhoneVault
) -> None:
    client, dispatcher = dev
    seed_tree(sessions)
    seed_user(sessions, "canbo", UserRole.STAFF, "HN")
    csrf = await log_in(client, "canbo")
    closed = await client.post(
        "/simulator/case",
        data={"phone": "0912 345 678", "agency": "HN-BD", "procedure_code": "1.001612", "csrf_token": csrf},
        allow_redirects=False,
    )
    assert closed.status == 303
    assert "202" in closed.headers["Location"]  # the intake API's answer, shown on the page
    with sessions() as s:
        case = s.scalar(select(Case))
        assert case is not None
        assert case.case_id.startswith("SIM-")
        survey = s.scalar(select(Survey))
        assert survey is not None
        assert survey.phone_hash == vault.lookup_hash("+84912345678")
        s.add(
            OutboundMessage(
                dedupe_key="sim-test",
                survey_id=survey.id,
                channel=survey.channel,
                recipient_enc=vault.encrypt("+84912345678"),
                text="Cau 1: Ong/ba hai long khong?",
                status=OutboxStatus.SENT,
            )
        )
        s.commit()

    outside = await client.post(
        "/simulator/case",
        data={"phone": "0912345678", "agency": "NOPE", "csrf_token": csrf},
        allow_redirects=False,
    )
    assert "400" in outside.headers["Location"]

    answered = await client.post(
        "/simulator/sms",
        data={"phone": "0912345678", "text": "5 <b>tốt</b>", "csrf_token": csrf},
        allow_redirects=False,
    )
    assert answered.status == 303
    assert "200" in answered.headers["Location"]
    with sessions() as s:
        event = s.scalar(select(InboundEvent))
        assert event is not None
        assert event.sender_hash == vault.lookup_hash("+84912345678")
    assert dispatcher.inbound == [event.id]  # handed to the workers like any SMS

    page = await client.get("/simulator", params={"phone": "0912345678"})
    html = await page.text()
    assert "Cau 1: Ong/ba hai long khong?" in html
    assert "5 &lt;b&gt;tốt&lt;/b&gt;" in html
