"""Issue 10 item 2 against a real Kannel: a worker that dies between Kannel taking a message and
the commit that marks it sent must not make the citizen receive it again (reported: 4 sendsms
requests for one row, attempts 1 → 4). The row is set aside as `unknown` and Kannel's delivery
report settles it; the send job, run again and again, never sends it a second time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest
from aiohttp.test_utils import TestServer
from redis import Redis
from sqlalchemy.orm import Session, sessionmaker

from bot.app import create_app
from bot.channels.outgoing import Outgoing
from bot.context import AppContext
from config.settings import Settings
from storage import outbox
from storage.crypto import PhoneVault
from storage.models import Channel, OutboundMessage, OutboxStatus, Route
from tests.support.app import RecordingDispatcher
from tests.support.kannel import KannelHarness
from workers.gateways import Senders
from workers.runtime import Runtime
from workers.sending import deliver
from workers.timers import sweep_once

pytestmark = pytest.mark.kannel

PHONE = "+84912345678"
T = TypeVar("T")


@pytest.fixture
def runtime(settings: Settings, kannel: KannelHarness, redis: Redis) -> Runtime:
    return Runtime.build(settings.model_copy(update=kannel.settings_overrides()))


@pytest.fixture
async def web(runtime: Runtime, webhook_port: int) -> AsyncIterator[None]:
    """Our app on the port Kannel's dlr-url calls, so delivery reports arrive for real."""
    context = AppContext(
        settings=runtime.settings,
        sessions=runtime.sessions,
        vault=runtime.vault,
        redis=runtime.redis,
        dispatcher=RecordingDispatcher(),
    )
    server = TestServer(create_app(context), host="127.0.0.1", port=webhook_port)
    await server.start_server()
    yield
    await server.close()


async def eventually(probe: Callable[[], T | None], what: str, timeout: float = 30.0) -> T:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await asyncio.to_thread(probe)
        if value:
            return value
        if loop.time() > deadline:
            pytest.fail(f"{what} did not happen within {timeout}s")
        await asyncio.sleep(0.05)


def _store(sessions: sessionmaker[Session], vault: PhoneVault) -> int:
    with sessions() as session, session.begin():
        row = outbox.add_message(
            session,
            dedupe_key="survey:1:q1:0",
            channel=Channel.SMS,
            recipient_enc=vault.encrypt(PHONE),
            text="Cau 1/3: Ong/Ba hai long the nao? Tra loi 1-5",
        )
        session.flush()
        return row.id


async def _send_then_die(runtime: Runtime, message_id: int) -> None:
    """What the dead worker did: claim the row, hand it to Kannel, and stop before committing."""
    with runtime.sessions() as session, session.begin():
        [claim] = outbox.claim_due(session, datetime.now(UTC), 1, ids=[message_id])
    with runtime.sessions() as session, session.begin():
        outbox.mark_requested(session, claim.token, [claim.id], datetime.now(UTC))
    async with Senders(runtime) as senders:
        await senders.send(Outgoing(claim.id, None, Route.SMS, PHONE, claim.text))


async def test_a_send_whose_worker_died_is_never_sent_again(
    kannel: KannelHarness, runtime: Runtime, web: None
) -> None:
    message_id = _store(runtime.sessions, runtime.vault)
    await _send_then_die(runtime, message_id)
    first = await asyncio.to_thread(kannel.phone.wait_for_mt, PHONE)
    assert first.text.startswith("Cau 1/3")

    # The reported scenario: the sweep after the lease, and the send job run three more times.
    after_lease = datetime.now(UTC) + timedelta(seconds=runtime.settings.SIPAS_SEND_LEASE + 1)
    for _ in range(3):
        await asyncio.to_thread(sweep_once, runtime, after_lease)
        assert await asyncio.to_thread(deliver, runtime, message_id, after_lease) == "skipped"

    def settled() -> OutboundMessage | None:
        with runtime.sessions() as session:
            row = session.get(OutboundMessage, message_id)
            return row if row is not None and row.status is OutboxStatus.DELIVERED else None

    # Kannel's delivery report of the one real send settles the row, whatever its state then.
    row = await eventually(settled, "the delivery report of the first send")
    assert row.attempts == 1
    with pytest.raises(TimeoutError):
        await asyncio.to_thread(kannel.phone.wait_for_mt, PHONE, 3.0)
