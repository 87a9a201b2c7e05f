"""The contract every channel adapter passes (courier's RunIncomingTestCases / RunOutgoingTestCases):
the same assertions for Kannel, the brandname API, the Zalo Bot Platform and the Zalo OA/ZNS,
through the real app over HTTP, on the real database.

- an inbound message is stored once, handed to the workers once, and reads back, from the stored
  copy, through the provider's own `parse_stored`, as the neutral message (sender, text, provider
  id: bot.channels.sms.InboundSms for SMS, bot.channels.zalo.events.InboundRecord for Zalo);
- the same provider id again is stored once and handed over once;
- a forged request (wrong token, secret or signature) and malformed ones get a 4xx and store
  nothing; a replayed one is a duplicate, or, where the provider signs a time (brandname, Zalo
  OA), refused with a 4xx outside that window;
- a database that cannot store answers 503 (the provider retries), never 200 or another 5xx;
- a delivery status is mapped onto the neutral storage.outbox.Delivery and settles the row
  (delivered -> delivered, accepted -> unchanged, failed -> failed);
- a send, through the sender the registry builds for the provider, is classified by the
  provider's own mapping onto bot.channels.outgoing.SendError: taken, temporary failure (retry),
  permanent failure (a Zalo recipient out of reach: unreachable, the survey moves to SMS);
- the registry lists every provider once, with its channel and routes, and every outbox route has
  exactly one sender (SMS: the one SIPAS_SMS_PROVIDER names).

Each adapter's scenes come from its package's fixtures/ (bot/channels/<provider>/fixtures: for
SMS `mo.*` is 84912345678 writing "Rất hài lòng", `status_<delivered|accepted|failed>.*` report on
`{ref}`; for Zalo the text events of events/), so a new provider is added to this suite by one
entry in ADAPTERS. Zalo has no delivery callback of this kind, so the status cases run for the SMS
providers. Sends go to a server that answers as the provider does, over HTTP: Kannel's answers
(202 / 503 / 403, and a real bearerbox + smsbox for taken / refused / gone), the brandname
simulator, and the Zalo simulator (bot/channels/zalo/simulator) for the Bot API, the OA API and ZNS.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestServer
from redis import Redis
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from yarl import URL

from bot.channels import registry, zalo_bot, zalo_oa
from bot.channels.brandname.simulator import SimState
from bot.channels.brandname.simulator import create_app as create_simulator
from bot.channels.brandname.webhooks import MO_PATH as BRANDNAME_MO
from bot.channels.brandname.webhooks import STATUS_PATH as BRANDNAME_STATUS
from bot.channels.kannel.send import DLR_PATH as KANNEL_DLR
from bot.channels.kannel.webhooks import MO_PATH as KANNEL_MO
from bot.channels.outgoing import Outgoing, SendError
from bot.channels.sms import InboundSms
from bot.channels.zalo import InMemoryTokenStore, OATokens
from bot.channels.zalo.events import InboundRecord
from bot.channels.zalo.simulator import ZaloSimulator
from bot.channels.zalo_oa.send import ZaloOASender
from config.settings import PROJECT_ROOT, MissingSettingError, Settings
from storage import outbox
from storage.crypto import PhoneVault
from storage.db import make_engine
from storage.models import Channel, InboundEvent, OutboundMessage, OutboxStatus, Route
from tests.security.webhook_client import (
    BOT_SECRET,
    BRANDNAME_SECRET,
    MO_TOKEN,
    brandname_signature,
    dlr_token_vector,
    oa_mac,
)
from tests.support.app import Client, RecordingDispatcher, app_client
from tests.support.kannel import KannelHarness
from tests.support.services import free_port
from workers.runtime import Runtime

FIXTURES = PROJECT_ROOT / "bot" / "channels"
SMS_SCENE = ("+84912345678", "Rất hài lòng")
Deliver = Callable[[Client, bytes, bool], Awaitable[ClientResponse]]
Inbound = InboundSms | InboundRecord  # the neutral reading of an SMS provider's MO, of a Zalo event


# --- how each adapter is reached --------------------------------------------------------------


def _kannel(path: str, token_for: Callable[[bytes], str]) -> Deliver:
    """Kannel calls a GET URL: the fixture is the query string, the token is added here."""

    async def deliver(client: Client, raw: bytes, authentic: bool) -> ClientResponse:
        token = token_for(raw) if authentic else "forged-token-0123456"
        return await client.get(URL(f"{path}?{raw.decode('ascii')}&token={token}", encoded=True))

    return deliver


def _dlr_token(raw: bytes) -> str:
    ref = dict(pair.split("=", 1) for pair in raw.decode("ascii").split("&"))["ref"]
    return dlr_token_vector(MO_TOKEN, ref)


def _brandname(path: str, age: int = 0) -> Deliver:
    """Signed as the API signs (`age` seconds ago: a captured request replayed later)."""

    async def deliver(client: Client, raw: bytes, authentic: bool) -> ClientResponse:
        stamp = str(int(time.time()) - age)
        secret = BRANDNAME_SECRET if authentic else "not-the-callback-secret"
        headers = {
            "Content-Type": "application/json",
            "X-Brandname-Timestamp": stamp,
            "X-Brandname-Signature": brandname_signature(raw, stamp, secret),
        }
        return await client.post(path, data=raw, headers=headers)

    return deliver


async def _zalo_bot(client: Client, raw: bytes, authentic: bool) -> ClientResponse:
    secret = BOT_SECRET if authentic else "forged-secret-0123"
    return await client.post("/webhooks/zalo/bot", data=raw, headers={"X-Bot-Api-Secret-Token": secret})


async def _zalo_oa(client: Client, raw: bytes, authentic: bool) -> ClientResponse:
    try:
        stamp = str(json.loads(raw).get("timestamp", ""))
    except (ValueError, AttributeError):
        stamp = ""
    mac = oa_mac(raw.decode("utf-8"), stamp) if authentic else "0" * 64
    return await client.post("/webhooks/zalo/oa", data=raw, headers={"X-ZEvent-Signature": f"mac={mac}"})


def _oa_event_at(raw: bytes, age: int = 0) -> bytes:
    """An OA event with its timestamp `age` seconds ago (the webhook refuses events over a day old)."""
    event = json.loads(raw)
    event["timestamp"] = str(int((time.time() - age) * 1000))
    return json.dumps(event, ensure_ascii=False).encode("utf-8")


async def _zalo_oa_replayed(client: Client, raw: bytes, authentic: bool) -> ClientResponse:
    """The event as Zalo signed it two days ago, replayed now (the signature covers the timestamp)."""
    return await _zalo_oa(client, _oa_event_at(raw, 2 * 24 * 3600), authentic)


# --- how each adapter sends -------------------------------------------------------------------


@dataclass
class Answers:
    """A server playing a provider's send API: each request gets the next scripted answer."""

    script: list[tuple[int, str, dict[str, str]]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        status, body, headers = self.script.pop(0)
        return web.Response(status=status, text=body, headers=headers)


@pytest.fixture
async def answers() -> AsyncIterator[Answers]:
    script = Answers()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", script.handle)
    async with TestServer(app) as server:
        script.url = str(server.make_url("/"))
        yield script


SendOutcome = str  # "sent" | "temporary" | "permanent"
Send = Callable[[Runtime, Answers, str], Awaitable[SendOutcome]]
SMS = Outgoing(42, None, Route.SMS, "+84912345678", "Cau 1/3: Ong/ba hai long khong?")


def _with(runtime: Runtime, **settings: str) -> Runtime:
    return dataclasses.replace(runtime, settings=runtime.settings.model_copy(update=settings))


async def _send(provider: str, runtime: Runtime, message: Outgoing) -> SendOutcome:
    """`message` through the sender the registry builds for `provider`, as the send job does."""
    sender = registry.PROVIDERS[provider].sender(runtime)
    try:
        await sender.send(message)
    except SendError as exc:
        return _outcome_of(exc)
    finally:
        await sender.aclose()
    return "sent"


def _outcome_of(exc: SendError) -> SendOutcome:
    assert not exc.ambiguous  # each scripted failure is a clear answer
    return "temporary" if exc.retryable else "permanent"


async def _send_kannel(runtime: Runtime, script: Answers, scene: str) -> SendOutcome:
    script.script.append(
        {
            "sent": (202, "0: Accepted for delivery", {}),
            "temporary": (503, "Internal error", {}),
            "permanent": (403, "Authorization failed for sendsms", {}),
        }[scene]
    )
    return await _send("kannel", _with(runtime, KANNEL_SENDSMS_URL=script.url), SMS)


async def _send_brandname(runtime: Runtime, _script: Answers, scene: str) -> SendOutcome:
    state = SimState(
        api_key="brandname-key-0123", callback_secret=BRANDNAME_SECRET, mo_url="http://127.0.0.1:9/"
    )
    if scene == "temporary":
        state.answers.append({"status": 503})
    key = "wrong-key" if scene == "permanent" else state.api_key  # the API answers 401
    async with TestServer(create_simulator(state)) as server:
        configured = _with(runtime, BRANDNAME_API_URL=str(server.make_url("/v1/sms")), BRANDNAME_API_KEY=key)
        outcome = await _send("brandname", configured, SMS)
    assert len(state.messages) == (1 if outcome == "sent" else 0)
    return outcome


def _at_simulator(runtime: Runtime, sim: ZaloSimulator) -> Runtime:
    """The runtime with every Zalo API at the simulator, under its identities."""
    c = sim.config
    return _with(
        runtime,
        ZALO_BOT_TOKEN=c.bot_token,
        ZALO_OA_APP_ID=c.app_id,
        ZALO_APP_SECRET=c.app_secret,
        **dict.fromkeys(("ZALO_BOT_API_BASE", "ZALO_OA_API_BASE", "ZALO_OAUTH_BASE", "ZNS_API_BASE"),
                        sim.base_url),
    )  # fmt: skip


async def _send_zalo_bot(runtime: Runtime, _script: Answers, scene: str) -> SendOutcome:
    """The Bot Platform's sender to the simulated Bot API: taken; a 503 (temporary); a chat that
    blocked the bot, 403 (permanent and unreachable: the survey moves to SMS)."""
    async with ZaloSimulator() as sim:
        chat = "6ede9afa66b88fe6d6a9"
        if scene == "temporary":
            sim.config.send_failures.append(503)
        if scene == "permanent":
            sim.config.blocked_chats.add(chat)
        message = Outgoing(42, None, Route.ZALO_BOT, chat, "Cảm ơn Ông/Bà")
        outcome = await _send("zalo_bot", _at_simulator(runtime, sim), message)
        assert len(sim.bot_sent) == (1 if outcome == "sent" else 0)
    return outcome


async def _send_zalo_oa(runtime: Runtime, _script: Answers, scene: str) -> SendOutcome:
    """The OA's sender (its token pair held in memory here, in the database in the worker: the
    registry's factory is asserted below), a customer-service message and a ZNS template, to the
    simulated OA and ZNS APIs, both classified alike: taken; a 503 each (temporary); a user
    outside the OA's reach (-213) and a phone without Zalo (-118) (permanent and unreachable: the
    survey moves to SMS)."""
    async with ZaloSimulator() as sim:
        user, phone = "2468013579246801357", "+84912345678"
        if scene == "temporary":
            sim.config.send_failures.extend([503, 503])
        if scene == "permanent":
            sim.config.oa_user_errors[user] = -213
            sim.config.zns_phone_errors[phone.lstrip("+")] = -118
        access, refresh = sim.issue_tokens()
        tokens = InMemoryTokenStore(OATokens(access, refresh, datetime.now(UTC) + timedelta(hours=25)))
        sender = ZaloOASender(_at_simulator(runtime, sim).settings, tokens)
        template = {"template_id": "rating-template", "template_data": {"ma_ho_so": "KD-1"}}
        outcomes: list[SendOutcome] = []
        unreachable: list[bool] = []
        for message in (
            Outgoing(42, None, Route.ZALO_OA, user, "Cảm ơn Ông/Bà"),
            Outgoing(43, 7, Route.ZNS, phone, "", template),
        ):
            try:
                await sender.send(message)
                outcomes.append("sent")
            except SendError as exc:
                outcomes.append(_outcome_of(exc))
                unreachable.append(exc.unreachable)
        await sender.aclose()
        assert unreachable == ([True, True] if scene == "permanent" else [False, False][: len(unreachable)])
        assert (len(sim.oa_sent), len(sim.zns_sent)) == ((1, 1) if scene == "sent" else (0, 0))
        if scene == "sent":
            assert sim.zns_sent[0]["tracking_id"] == "7"  # the survey id comes back with the rating
    assert outcomes[0] == outcomes[1], outcomes
    return outcomes[0]


# --- the adapters -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Adapter:
    name: str  # InboundEvent.provider
    mo: bytes  # a citizen's message, as the provider sends it
    expected: tuple[str, str]  # its neutral (sender, text)
    deliver_mo: Deliver
    malformed: tuple[bytes, ...]  # authentic but unusable requests
    parse_stored: Callable[[str], Inbound]  # the provider's own reading of its stored copy
    send: Send
    status: dict[str, bytes] = field(default_factory=dict)  # scene -> fixture with {ref}
    deliver_status: Deliver | None = None
    malformed_status: tuple[bytes, ...] = ()  # authentic but unusable delivery reports
    # The MO as a captured request replayed outside the window the provider signs a time for;
    # None for a provider that signs no time (Kannel's token, the Bot Platform's secret), where
    # a replay is known by its provider id only (a duplicate).
    deliver_replayed: Deliver | None = None

    def __str__(self) -> str:
        return self.name


def _scenes(folder: Path, suffix: str) -> dict[str, bytes]:
    return {
        scene: (folder / f"status_{scene}{suffix}").read_bytes()
        for scene in ("delivered", "accepted", "failed")
    }


ADAPTERS = (
    Adapter(
        name="kannel",
        mo=(FIXTURES / "kannel" / "fixtures" / "mo.query").read_bytes(),
        expected=SMS_SCENE,
        deliver_mo=_kannel(KANNEL_MO, lambda _raw: MO_TOKEN),
        malformed=(b"from=84912345678&text=5", b"id=a1&text=5", b"from=84912345678&id=a2&text=%FF"),
        parse_stored=registry.PROVIDERS["kannel"].parse_stored,
        send=_send_kannel,
        status=_scenes(FIXTURES / "kannel" / "fixtures", ".query"),
        deliver_status=_kannel(KANNEL_DLR, _dlr_token),
        malformed_status=(b"ref=1&status=%25d", b"ref=1&status=-1", b"ref=1&msg=a"),
    ),
    Adapter(
        name="brandname",
        mo=(FIXTURES / "brandname" / "fixtures" / "mo.json").read_bytes(),
        expected=SMS_SCENE,
        deliver_mo=_brandname(BRANDNAME_MO),
        malformed=(
            b"not json",
            b"[]",
            b'{"id": "x1", "text": "5"}',
            b'{"id": "x 1", "from": "0912345678", "text": "5"}',
        ),
        parse_stored=registry.PROVIDERS["brandname"].parse_stored,
        send=_send_brandname,
        status=_scenes(FIXTURES / "brandname" / "fixtures", ".json"),
        deliver_status=_brandname(BRANDNAME_STATUS),
        deliver_replayed=_brandname(BRANDNAME_MO, age=3600),
        malformed_status=(
            b"[]",
            b'{"message_id": "m1", "ref": "1", "status": "DELIVRD"}',
            b'{"message_id": "m1", "ref": "one", "status": "delivered"}',
        ),
    ),
    Adapter(
        name="zalo_bot",
        mo=(FIXTURES / "zalo_bot" / "fixtures" / "events" / "text.wrapped.json").read_bytes(),
        expected=("6ede9afa66b88fe6d6a9", "5"),
        deliver_mo=_zalo_bot,
        malformed=(b"not json", b"[]", b'{"ok": true, "result": {"message": {}}}'),
        parse_stored=zalo_bot.parse_stored,
        send=_send_zalo_bot,
    ),
    Adapter(
        name="zalo_oa",
        mo=_oa_event_at((FIXTURES / "zalo_oa" / "fixtures" / "events" / "user_send_text.json").read_bytes()),
        expected=("2468013579246801357", "Rất hài lòng"),
        deliver_mo=_zalo_oa,
        malformed=(b"not json", b"[]", b'{"app_id": "3051234567890123456"}'),
        parse_stored=zalo_oa.parse_stored,
        send=_send_zalo_oa,
        deliver_replayed=_zalo_oa_replayed,
    ),
)
SMS_ADAPTERS = tuple(adapter for adapter in ADAPTERS if adapter.status)
TIMED_ADAPTERS = tuple(adapter for adapter in ADAPTERS if adapter.deliver_replayed)


def test_every_provider_is_in_the_suite() -> None:
    assert [adapter.name for adapter in ADAPTERS] == list(registry.PROVIDERS)
    assert {adapter.name for adapter in SMS_ADAPTERS} == set(registry.SMS)


def test_the_registry_describes_every_provider_and_a_sender_for_every_route(runtime: Runtime) -> None:
    """Each package's PROVIDER, its routes mounted, its channel; every outbox route has exactly
    one provider (SMS: the one SIPAS_SMS_PROVIDER names, an unknown name refused in one line)."""
    assert [module.PROVIDER for module in registry.ROUTE_MODULES] == list(registry.PROVIDERS.values())
    for name, provider in registry.PROVIDERS.items():
        assert provider.routes is registry.ROUTE_MODULES[list(registry.PROVIDERS).index(name)].routes
        assert all(route.path.startswith("/webhooks/") for route in provider.routes)
    serving = {
        (provider.channel, route): name
        for name, provider in registry.PROVIDERS.items()
        for route in provider.serves
    }
    assert serving == {
        (Channel.SMS, Route.SMS): "brandname",  # both serve it; the setting picks one
        (Channel.ZALO, Route.ZALO_BOT): "zalo_bot",
        (Channel.ZALO, Route.ZALO_OA): "zalo_oa",
        (Channel.ZALO, Route.ZNS): "zalo_oa",
    }
    assert set(registry.SMS) == {"kannel", "brandname"}
    assert set(registry.ZALO) == {"zalo_bot", "zalo_oa"}
    for choice in registry.SMS:
        chosen = runtime.settings.model_copy(update={"SIPAS_SMS_PROVIDER": choice})
        assert registry.for_route(Route.SMS, chosen).name == choice
    for route in (Route.ZALO_BOT, Route.ZALO_OA, Route.ZNS):
        assert route in registry.for_route(route, runtime.settings).serves
    unknown = runtime.settings.model_copy(update={"SIPAS_SMS_PROVIDER": "esms"})
    with pytest.raises(MissingSettingError, match="'esms' is not one of kannel, brandname"):
        registry.for_route(Route.SMS, unknown)
    # The OA's sender keeps its token pair in the database (one refresh across processes).
    oa = registry.PROVIDERS["zalo_oa"].sender(_with(runtime, ZALO_OA_APP_ID="3051234567890123456"))
    assert isinstance(oa, ZaloOASender)
    with pytest.raises(MissingSettingError, match="ZALO_APP_SECRET"):
        registry.PROVIDERS["zalo_oa"].sender(_with(runtime, ZALO_APP_SECRET=""))


@pytest.fixture
def runtime(settings: Settings, sessions: sessionmaker[Session], vault: PhoneVault, redis: Redis) -> Runtime:
    return Runtime(settings=settings, sessions=sessions, vault=vault, redis=redis)


def _events(sessions: sessionmaker[Session]) -> list[InboundEvent]:
    with sessions() as session:
        return list(session.scalars(select(InboundEvent).order_by(InboundEvent.id)))


# --- inbound ----------------------------------------------------------------------------------


@pytest.mark.parametrize("adapter", ADAPTERS, ids=str)
async def test_inbound_is_stored_once_and_reads_as_the_neutral_message(
    adapter: Adapter,
    client: Client,
    sessions: sessionmaker[Session],
    vault: PhoneVault,
    dispatcher: RecordingDispatcher,
) -> None:
    response = await adapter.deliver_mo(client, adapter.mo, True)
    assert response.status == 200, await response.text()
    [event] = _events(sessions)
    sender, text = adapter.expected
    assert event.provider == adapter.name
    assert event.sender_hash == vault.lookup_hash(sender)
    assert sender.lstrip("+") not in event.payload_enc  # stored encrypted
    assert dispatcher.inbound == [event.id]
    message = adapter.parse_stored(vault.decrypt(event.payload_enc))
    assert (message.sender, message.text, message.provider_id) == (sender, text, event.provider_id)


@pytest.mark.parametrize("adapter", ADAPTERS, ids=str)
async def test_the_same_provider_id_is_stored_and_handed_over_once(
    adapter: Adapter, client: Client, sessions: sessionmaker[Session], dispatcher: RecordingDispatcher
) -> None:
    for _ in range(2):
        response = await adapter.deliver_mo(client, adapter.mo, True)
        assert response.status == 200, await response.text()
    assert len(_events(sessions)) == 1
    assert len(dispatcher.inbound) == 1


@pytest.mark.parametrize("adapter", ADAPTERS, ids=str)
async def test_forged_and_malformed_input_is_refused_with_a_4xx_and_not_stored(
    adapter: Adapter, client: Client, sessions: sessionmaker[Session], dispatcher: RecordingDispatcher
) -> None:
    forged = await adapter.deliver_mo(client, adapter.mo, False)
    assert forged.status in (401, 403), await forged.text()
    assert "error" in await forged.json()
    for body in adapter.malformed:
        refused = await adapter.deliver_mo(client, body, True)
        assert 400 <= refused.status < 500, (body, await refused.text())
        assert "error" in await refused.json()
    assert _events(sessions) == []
    assert dispatcher.inbound == []


@pytest.mark.parametrize("adapter", TIMED_ADAPTERS, ids=str)
async def test_a_replayed_request_outside_the_signed_window_is_refused(
    adapter: Adapter, client: Client, sessions: sessionmaker[Session], dispatcher: RecordingDispatcher
) -> None:
    """Correctly signed, but long ago: refused before anything is stored. (Within the window, and
    for every provider, a replay is the same provider id: the duplicate case above.)"""
    assert adapter.deliver_replayed is not None
    replayed = await adapter.deliver_replayed(client, adapter.mo, True)
    assert replayed.status in (401, 403), await replayed.text()
    assert "error" in await replayed.json()
    assert _events(sessions) == []
    assert dispatcher.inbound == []


@pytest.mark.parametrize("adapter", ADAPTERS, ids=str)
async def test_a_database_that_cannot_store_answers_503(
    adapter: Adapter, settings: Settings, vault: PhoneVault, redis: Redis, dispatcher: RecordingDispatcher
) -> None:
    """Only "could not store, retry" is a 5xx: the provider keeps the message and tries again."""
    engine = make_engine(f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere")  # nothing listens
    try:
        async with app_client(settings, sessionmaker(bind=engine), vault, redis, dispatcher) as down:
            answers = [await adapter.deliver_mo(down, adapter.mo, True)]
            for scene in adapter.status.values():
                assert adapter.deliver_status is not None
                answers.append(await adapter.deliver_status(down, scene.replace(b"{ref}", b"1"), True))
            for answer in answers:
                assert answer.status == 503, await answer.text()
                assert (await answer.json())["error"] == "storage_unavailable"
    finally:
        engine.dispose()
    assert dispatcher.inbound == []


# --- delivery status --------------------------------------------------------------------------


def _sent_row(sessions: sessionmaker[Session], vault: PhoneVault) -> int:
    with sessions() as session, session.begin():
        recipient = vault.encrypt("+84912345678")
        row = outbox.add_message(
            session, dedupe_key="contract:1", channel=Channel.SMS, recipient_enc=recipient, text="Cau 1"
        )
        row.status = OutboxStatus.SENT
        session.flush()
        return row.id


MAPPED = {
    "delivered": (outbox.Delivery.DELIVERED, OutboxStatus.DELIVERED),
    "accepted": (outbox.Delivery.ACCEPTED, OutboxStatus.SENT),
    "failed": (outbox.Delivery.FAILED, OutboxStatus.FAILED),
}


@pytest.mark.parametrize("scene", list(MAPPED))
@pytest.mark.parametrize("adapter", SMS_ADAPTERS, ids=str)
async def test_a_delivery_status_is_mapped_onto_the_neutral_one(
    adapter: Adapter,
    scene: str,
    client: Client,
    sessions: sessionmaker[Session],
    vault: PhoneVault,
    dispatcher: RecordingDispatcher,
) -> None:
    message_id = _sent_row(sessions, vault)
    raw = adapter.status[scene].replace(b"{ref}", str(message_id).encode())
    assert adapter.deliver_status is not None
    forged = await adapter.deliver_status(client, raw, False)
    assert forged.status in (401, 403)
    response = await adapter.deliver_status(client, raw, True)
    assert response.status == 200, await response.text()
    assert (await response.json())["result"].startswith(f"applied {scene}")
    again = await adapter.deliver_status(client, raw, True)
    assert (await again.json())["result"] == "duplicate"
    delivery, status = MAPPED[scene]
    with sessions() as session:
        row = session.get(OutboundMessage, message_id)
        assert row is not None
        assert (row.status, row.dlr_status) == (status, int(delivery))
        if scene == "failed":
            assert row.last_error is not None
            assert row.last_error.startswith(f"delivery report: {adapter.name}")
    [event] = _events(sessions)
    assert (event.provider, event.kind, event.processed_at is not None) == (adapter.name, "dlr", True)
    assert dispatcher.inbound == []  # applied at once: nothing for the workers


@pytest.mark.parametrize("adapter", SMS_ADAPTERS, ids=str)
async def test_a_malformed_delivery_status_is_refused_with_a_4xx_and_not_stored(
    adapter: Adapter, client: Client, sessions: sessionmaker[Session]
) -> None:
    assert adapter.deliver_status is not None
    for raw in adapter.malformed_status:
        refused = await adapter.deliver_status(client, raw, True)
        assert 400 <= refused.status < 500, (raw, await refused.text())
        assert "error" in await refused.json()
    assert _events(sessions) == []


# --- sending ----------------------------------------------------------------------------------


@pytest.mark.kannel
async def test_kannel_sends_are_classified_by_a_real_kannel(runtime: Runtime, kannel: KannelHarness) -> None:
    """The Kannel adapter's three outcomes from a real bearerbox and smsbox: taken (202 and the
    MT reaches the phone), refused (403, a wrong password), and smsbox gone (connection refused)."""
    real = _with(runtime, **kannel.settings_overrides())
    assert await _send("kannel", real, SMS) == "sent"
    assert kannel.phone.wait_for_mt(to=SMS.to).text == SMS.text
    assert await _send("kannel", _with(real, KANNEL_PASSWORD="not-the-password"), SMS) == "permanent"
    kannel.stop()
    assert await _send("kannel", real, SMS) == "temporary"


@pytest.mark.parametrize("scene", ["sent", "temporary", "permanent"])
@pytest.mark.parametrize("adapter", ADAPTERS, ids=str)
async def test_a_send_is_classified(adapter: Adapter, scene: str, runtime: Runtime, answers: Answers) -> None:
    assert await adapter.send(runtime, answers, scene) == scene
