"""The brandname provider against its simulator over HTTP: what the contract suite does not cover
(idempotent sends, Retry-After, a lost answer, the whole loop of callbacks into the real app, the
sender chosen by SIPAS_SMS_PROVIDER through the send job's Senders)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp.test_utils import TestServer
from redis import Redis
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.app import create_app
from bot.channels import registry
from bot.channels.brandname import BrandnameSender
from bot.channels.brandname.simulator import SimState
from bot.channels.brandname.simulator import create_app as create_simulator
from bot.channels.outgoing import Outgoing, SendError
from bot.context import AppContext
from config.settings import MissingSettingError, Settings
from storage import outbox
from storage.crypto import PhoneVault
from storage.models import Channel, InboundEvent, OutboundMessage, OutboxStatus, Route
from tests.security.webhook_client import BRANDNAME_SECRET, brandname_signature
from tests.support.app import Client, RecordingDispatcher
from workers.gateways import Senders
from workers.runtime import Runtime

API_KEY = "brandname-key-0123"


@pytest.fixture
async def simulator() -> AsyncIterator[tuple[SimState, str]]:
    state = SimState(api_key=API_KEY, callback_secret=BRANDNAME_SECRET, mo_url="http://127.0.0.1:9/")
    async with TestServer(create_simulator(state)) as server:
        yield state, str(server.make_url("/v1/sms"))


def _configured(settings: Settings, api_url: str, **extra: str) -> Settings:
    return settings.model_copy(update={"BRANDNAME_API_URL": api_url, "BRANDNAME_API_KEY": API_KEY, **extra})


def _sms(message_id: int, to: str = "+84912345678", text: str = "a") -> Outgoing:
    return Outgoing(message_id, None, Route.SMS, to, text)


async def _send(settings: Settings, message: Outgoing, timeout: int = 5) -> str:
    sender = BrandnameSender(settings.model_copy(update={"SIPAS_SEND_TIMEOUT": timeout}))
    try:
        return (await sender.send(message)).provider_id
    finally:
        await sender.aclose()


async def test_the_same_ref_is_sent_once(settings: Settings, simulator: tuple[SimState, str]) -> None:
    state, url = simulator
    configured = _configured(settings, url)
    sms = _sms(7, text="Cảm ơn ông/bà")
    first = await _send(configured, sms)
    again = await _send(configured, sms)  # a retry after a lost answer
    assert first == again
    [message] = state.messages
    assert (message["to"], message["text"], message["ref"], message["unicode"]) == (
        "+84912345678",
        "Cảm ơn ông/bà",
        "7",
        True,
    )


async def test_retry_after_and_a_lost_answer_are_retried(
    settings: Settings, simulator: tuple[SimState, str]
) -> None:
    state, url = simulator
    configured = _configured(settings, url)
    state.answers.extend([{"status": 429, "retry_after": 2}, {"hang": True}])
    with pytest.raises(SendError) as limited:
        await _send(configured, _sms(8))
    assert (limited.value.retryable, limited.value.retry_after) == (True, 2.0)
    with pytest.raises(SendError) as lost:
        await _send(configured, _sms(8), timeout=1)
    # The request may have been taken, yet resending is safe: the API de-duplicates on ref.
    assert (lost.value.retryable, lost.value.ambiguous) == (True, False)


async def test_refusals_are_permanent(settings: Settings, simulator: tuple[SimState, str]) -> None:
    _state, url = simulator
    with pytest.raises(SendError) as refused:
        await _send(_configured(settings, url), _sms(9, to="+1555000111"))
    assert not refused.value.retryable
    assert "422 invalid_number" in str(refused.value)
    with pytest.raises(MissingSettingError, match="BRANDNAME_API_KEY"):
        BrandnameSender(settings.model_copy(update={"BRANDNAME_API_KEY": ""}))


async def test_stale_signatures_and_unknown_statuses_are_refused(
    client: Client, sessions: sessionmaker[Session]
) -> None:
    body = json.dumps({"message_id": "bn-1", "ref": "1", "status": "delivered"}).encode()
    stale = str(int(time.time()) - 301)
    headers = {"X-Brandname-Timestamp": stale, "X-Brandname-Signature": brandname_signature(body, stale)}
    response = await client.post("/webhooks/sms/brandname/status", data=body, headers=headers)
    assert (response.status, (await response.json())["error"]) == (401, "stale_signature")
    body = json.dumps({"message_id": "bn-1", "ref": "1", "status": "DELIVRD"}).encode()
    now = str(int(time.time()))
    headers = {"X-Brandname-Timestamp": now, "X-Brandname-Signature": brandname_signature(body, now)}
    response = await client.post("/webhooks/sms/brandname/status", data=body, headers=headers)
    assert (response.status, (await response.json())["error"]) == (400, "unknown_status")
    with sessions() as session:
        assert session.scalars(select(InboundEvent)).all() == []


async def test_the_whole_loop_over_http(
    settings: Settings,
    sessions: sessionmaker[Session],
    vault: PhoneVault,
    redis: Redis,
    dispatcher: RecordingDispatcher,
    simulator: tuple[SimState, str],
) -> None:
    """The send job's Senders pick the brandname API by SIPAS_SMS_PROVIDER; the simulator calls
    our status webhook (accepted, then delivered) and forwards the citizen's reply to our MO one."""
    state, url = simulator
    context = AppContext(
        settings=settings, sessions=sessions, vault=vault, redis=redis, dispatcher=dispatcher
    )
    async with TestServer(create_app(context)) as web:
        base = str(web.make_url("")).rstrip("/")
        state.mo_url = f"{base}/webhooks/sms/brandname/mo"
        configured = _configured(settings, url, SIPAS_SMS_PROVIDER="brandname", SIPAS_PUBLIC_URL=base)
        with sessions() as session, session.begin():
            recipient = vault.encrypt("+84912345678")
            row = outbox.add_message(
                session, dedupe_key="loop:1", channel=Channel.SMS, recipient_enc=recipient, text="Cau 1"
            )
            session.flush()
            message_id = row.id
        runtime = Runtime(settings=configured, sessions=sessions, vault=vault, redis=redis)
        async with Senders(runtime) as senders:
            sent = await senders.send(Outgoing(message_id, None, Route.SMS, "+84912345678", "Cau 1"))
        assert (sent.provider_id, sent.coding) == (state.messages[0]["message_id"], "gsm7")
        with sessions() as session, session.begin():
            session.get_one(OutboundMessage, message_id).status = OutboxStatus.SENT
        for _ in range(100):  # the simulator reports 50 ms apart
            with sessions() as session:
                if session.get_one(OutboundMessage, message_id).status is OutboxStatus.DELIVERED:
                    break
            await asyncio.sleep(0.05)
        with sessions() as session:
            assert session.get_one(OutboundMessage, message_id).status is OutboxStatus.DELIVERED
        async with httpx.AsyncClient() as http:
            answer = await http.post(
                url.replace("/v1/sms", "/sim/mo"), json={"from": "84912345678", "text": "Rat hai long"}
            )
        assert answer.json()["service_answered"] == 200
    assert [status for _url, status in state.callbacks] == [200, 200, 200]
    with sessions() as session:
        events = session.scalars(select(InboundEvent).order_by(InboundEvent.id)).all()
        assert [(e.provider, e.kind) for e in events] == [
            ("brandname", "dlr"),
            ("brandname", "dlr"),
            ("brandname", "mo"),
        ]
        assert events[2].sender_hash == vault.lookup_hash("+84912345678")
        assert dispatcher.inbound == [events[2].id]
        mo = registry.PROVIDERS["brandname"].parse_stored(vault.decrypt(events[2].payload_enc))
        assert (mo.sender, mo.text) == ("+84912345678", "Rat hai long")


def test_an_unknown_provider_stops_the_process_with_its_name(settings: Settings) -> None:
    with pytest.raises(
        MissingSettingError, match="SIPAS_SMS_PROVIDER='esms' is not one of kannel, brandname"
    ):
        registry.check(settings.model_copy(update={"SIPAS_SMS_PROVIDER": "esms"}))
