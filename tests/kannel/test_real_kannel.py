"""The SMS channel against a real Kannel 1.4.5 (bearerbox + smsbox + fake SMSC + fakesmsc).

Our web app runs on a real port that Kannel's sms-service and dlr-urls call; the phone is
fakesmsc. Waiting is by polling a condition with a generous deadline, never by asserting time.
"""

from __future__ import annotations

import asyncio
import json
import unicodedata
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

import pytest
from aiohttp.test_utils import TestServer
from redis import Redis
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.app import create_app
from bot.channels.kannel import KannelSender
from bot.channels.kannel.parse import parse_stored
from bot.channels.outgoing import Outgoing, SendError, Sent
from bot.context import AppContext
from config.settings import Settings
from storage import outbox
from storage.crypto import PhoneVault
from storage.models import Channel, InboundEvent, OutboundMessage, OutboxStatus, Route
from tests.support.app import RecordingDispatcher
from tests.support.kannel import KannelHarness

pytestmark = pytest.mark.kannel

PHONE = "+84912345678"
T = TypeVar("T")


class WebApp:
    """Our app on the port Kannel calls back; stop() and start() simulate an outage."""

    def __init__(self, context: AppContext, port: int) -> None:
        self.context = context
        self.port = port
        self.server: TestServer | None = None

    async def start(self) -> None:
        self.server = TestServer(create_app(self.context), host="127.0.0.1", port=self.port)
        await self.server.start_server()

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.close()
            self.server = None


@pytest.fixture
def kannel_settings(settings: Settings, kannel: KannelHarness) -> Settings:
    return settings.model_copy(update=kannel.settings_overrides())


@pytest.fixture
async def web(
    kannel_settings: Settings,
    sessions: sessionmaker[Session],
    vault: PhoneVault,
    redis: Redis,
    dispatcher: RecordingDispatcher,
    webhook_port: int,
) -> AsyncIterator[WebApp]:
    context = AppContext(
        settings=kannel_settings, sessions=sessions, vault=vault, redis=redis, dispatcher=dispatcher
    )
    app = WebApp(context, webhook_port)
    await app.start()
    yield app
    await app.stop()


async def eventually(
    probe: Callable[[], T | None], what: str, kannel: KannelHarness, timeout: float = 30.0
) -> T:
    """Poll `probe` (run off the event loop, which serves Kannel's callbacks) until it is truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await asyncio.to_thread(probe)
        if value:
            return value
        if loop.time() > deadline:
            pytest.fail(f"{what} did not happen within {timeout}s\n{kannel.logs()}")
        await asyncio.sleep(0.05)


def sms(message_id: int, text: str) -> Outgoing:
    return Outgoing(message_id, None, Route.SMS, PHONE, text)


async def send(settings: Settings, *messages: Outgoing) -> list[Sent]:
    sender = KannelSender(settings)
    try:
        return [await sender.send(message) for message in messages]
    finally:
        await sender.aclose()


def mo_events(sessions: sessionmaker[Session]) -> list[InboundEvent]:
    with sessions() as session:
        return list(
            session.scalars(select(InboundEvent).where(InboundEvent.kind == "mo").order_by(InboundEvent.id))
        )


async def test_unaccented_and_accented_mt_arrive_with_their_exact_text(
    kannel: KannelHarness, kannel_settings: Settings, web: WebApp
) -> None:
    plain = "SIPAS: Ban danh gia muc do hai long chung (1-5)?\nTra loi TC de tu choi."
    accented = "Cảm ơn ông/bà đã đánh giá dịch vụ hành chính công của phường Thanh Xuân Trung."
    results = await send(kannel_settings, sms(101, plain), sms(102, unicodedata.normalize("NFD", accented)))
    assert [(r.coding, r.segments) for r in results] == [("gsm7", 1), ("ucs2", 2)]
    first = await asyncio.to_thread(kannel.phone.wait_for_mt, PHONE)
    second = await asyncio.to_thread(kannel.phone.wait_for_mt, PHONE)
    assert (first.text, first.coding, first.sender) == (plain, "gsm7", kannel_settings.SMS_SENDER)
    assert (second.text, second.coding, second.parts) == (accented, "ucs2", 2)  # sent composed (NFC)


async def test_real_kannel_refusals_are_permanent(kannel: KannelHarness, kannel_settings: Settings) -> None:
    wrong_password = kannel_settings.model_copy(update={"KANNEL_PASSWORD": "not-the-password"})
    with pytest.raises(SendError) as refused:
        await send(wrong_password, sms(1, "x"))
    assert "403" in str(refused.value)
    assert not refused.value.retryable
    no_sender = kannel_settings.model_copy(update={"SMS_SENDER": ""})
    with pytest.raises(SendError) as rejected:
        await send(no_sender, sms(1, "x"))
    assert "400" in str(rejected.value)  # "Sender missing and no global set, rejected"
    assert not rejected.value.retryable
    assert kannel.phone.pending_mt() == []


async def test_mo_reaches_the_webhook_stored_with_sender_and_vietnamese_text(
    kannel: KannelHarness,
    web: WebApp,
    sessions: sessionmaker[Session],
    vault: PhoneVault,
    dispatcher: RecordingDispatcher,
) -> None:
    replies = ["Dịch vụ rất tốt, cảm ơn!", " 3.", unicodedata.normalize("NFD", "Rất hài lòng")]
    for text in replies:
        kannel.phone.send_mo("84912345678", text)

    def three_stored() -> list[InboundEvent] | None:
        stored = mo_events(sessions)
        return stored if len(stored) == 3 else None

    stored = await eventually(three_stored, "3 MO stored", kannel)
    texts = []
    for event in stored:
        sms = parse_stored(vault.decrypt(event.payload_enc))
        assert (sms.sender, sms.receiver) == (PHONE, "8040")
        assert event.sender_hash == vault.lookup_hash(PHONE)
        assert sms.sent_at is not None
        texts.append(sms.text)
    assert sorted(texts) == sorted(unicodedata.normalize("NFC", text) for text in replies)
    # One wake-up per group of MOs stored together (bot.channels.event_writer), the last one
    # naming the newest event: the workers are woken after every MO was committed.
    assert 1 <= len(dispatcher.inbound) <= 3
    assert dispatcher.inbound[-1] == max(event.id for event in stored)


async def test_delivery_reports_mark_the_message_delivered(
    kannel: KannelHarness,
    kannel_settings: Settings,
    web: WebApp,
    sessions: sessionmaker[Session],
    vault: PhoneVault,
) -> None:
    with sessions() as session, session.begin():
        row = outbox.add_message(
            session,
            dedupe_key="kannel:dlr",
            channel=Channel.SMS,
            recipient_enc=vault.encrypt(PHONE),
            text="Cam on",
        )
        session.flush()
        message_id = row.id
    [result] = await send(kannel_settings, sms(message_id, "Cam on"))
    assert result.provider_id

    def delivered() -> OutboundMessage | None:
        with sessions() as session:
            message = session.get(OutboundMessage, message_id)
            return message if message is not None and message.status == OutboxStatus.DELIVERED else None

    await eventually(delivered, "the delivery report", kannel)
    await asyncio.to_thread(kannel.phone.wait_for_mt, PHONE)

    def both_reports() -> list[InboundEvent] | None:
        with sessions() as session:
            reports = list(session.scalars(select(InboundEvent).where(InboundEvent.kind == "dlr")))
        return reports if len(reports) == 2 else None

    reports = await eventually(both_reports, "both delivery reports (8 and 1)", kannel)
    assert sorted(r.provider_id.split(":")[1] for r in reports) == ["1", "8"]
    assert all(r.processed_at is not None for r in reports)
    assert {r.result for r in reports} == {
        "applied delivered (kannel 1 delivered)",
        "applied accepted (kannel 8 smsc_accepted)",
    }
    payload = json.loads(vault.decrypt(reports[0].payload_enc))
    assert payload["msg"] == result.provider_id  # the report names the attempt it is about


async def test_mo_sent_while_we_are_down_is_delivered_once_when_we_are_back(
    kannel: KannelHarness, web: WebApp, sessions: sessionmaker[Session], dispatcher: RecordingDispatcher
) -> None:
    await web.stop()
    kannel.phone.send_mo("84912345678", "5")
    # smsbox failed to reach us and has started retrying (http-request-retry).
    await eventually(lambda: kannel.http_retries_logged() >= 2, "two failed deliveries of the MO", kannel)
    assert mo_events(sessions) == []
    await web.start()
    [event] = await eventually(lambda: mo_events(sessions) or None, "the retried MO", kannel)
    assert dispatcher.inbound == [event.id]
    # The retries all carry Kannel's one id for this MO: one event, one job, however many tries.
    retried_url_ids = {
        line.split("&id=")[1].split("&")[0]
        for line in (kannel.workdir / "smsbox.log").read_text(encoding="utf-8").splitlines()
        if "HTTP: Retrying request" in line
    }
    assert retried_url_ids == {event.provider_id}


async def test_gateway_down_is_retryable_and_a_restarted_kannel_delivers(
    kannel: KannelHarness, kannel_settings: Settings, web: WebApp
) -> None:
    await asyncio.to_thread(kannel.stop)
    with pytest.raises(SendError) as down:
        await send(kannel_settings, sms(5, "Xin chao"))
    assert down.value.retryable
    await asyncio.to_thread(kannel.start)
    await send(kannel_settings, sms(5, "Xin chao"))
    mt = await asyncio.to_thread(kannel.phone.wait_for_mt, PHONE)
    assert mt.text == "Xin chao"
