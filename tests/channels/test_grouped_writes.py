"""Grouped writes of webhook events (bot.channels.event_writer): the events of concurrent webhooks
share one transaction and one wake-up, each is stored exactly once, and a group that fails
leaves nothing of itself stored and answers 503 to every member."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.channels.event_writer import EventWriter, Incoming, NotStoredError, WriterBusyError
from bot.channels.kannel import dlr_token
from storage import outbox
from storage.crypto import PhoneVault
from storage.inbound import NewEvent, store_events
from storage.models import Channel, InboundEvent, OutboundMessage, OutboxStatus
from tests.security.webhook_client import MO_TOKEN as KANNEL_TOKEN
from tests.support.app import Client, RecordingDispatcher
from tests.support.refusals import refusing

MO = "/webhooks/sms/kannel"
DLR = "/webhooks/sms/kannel/dlr"


def mo(n: int, provider_id: str | None = None) -> dict[str, str]:
    return {"token": KANNEL_TOKEN, "from": f"849120{n:05d}", "to": "8040", "text": "5",
            "id": provider_id or f"grouped-{n}", "ts": "2026-12-01 08:00:00"}  # fmt: skip


def stored(sessions: sessionmaker[Session]) -> list[InboundEvent]:
    with sessions() as session:
        return list(session.scalars(select(InboundEvent).order_by(InboundEvent.id)))


def incoming(provider_id: str, sender: str = "+84912000001") -> Incoming:
    return Incoming("kannel", "mo", provider_id, f'{{"id": "{provider_id}"}}', sender)


@pytest.fixture
def poison(sessions: sessionmaker[Session]) -> Iterator[str]:
    """A trigger that makes the database refuse any event whose provider id is 'poison': a real
    failure of the group's INSERT, inside the database, for whatever group holds that event."""
    with refusing(sessions, "inbound_events", "INSERT", "NEW.provider_id = 'poison'"):
        yield "poison"


async def test_many_concurrent_webhooks_are_stored_once_with_few_wake_ups(
    client: Client, sessions: sessionmaker[Session], dispatcher: RecordingDispatcher
) -> None:
    """300 MOs at once, 60 of them sent twice at the same moment (a provider retry racing the
    first copy): every call is answered 200, every MO stored exactly once, and the workers are
    woken once per group (far fewer times than events), the last time with the newest event."""
    calls = [mo(n) for n in range(300)] + [mo(n) for n in range(0, 300, 5)]
    answers = await asyncio.gather(*(client.get(MO, params=params) for params in calls))
    assert [answer.status for answer in answers] == [200] * len(calls)
    rows = stored(sessions)
    assert sorted(row.provider_id for row in rows) == sorted(f"grouped-{n}" for n in range(300))
    assert all(row.processed_at is None and row.attempts == 0 for row in rows)
    assert 1 <= len(dispatcher.inbound) < 300
    assert dispatcher.inbound[-1] == max(row.id for row in rows)


async def test_duplicates_inside_a_group_and_across_groups(sessions: sessionmaker[Session]) -> None:
    now = datetime.now(UTC)

    def event(provider_id: str, provider: str = "kannel") -> NewEvent:
        return NewEvent(provider, "mo", provider_id, "enc", "hash")

    with sessions() as session, session.begin():
        first = store_events(session, [event("a"), event("b"), event("a"), event("a", "brandname")], now)
    assert [s.duplicate for s in first] == [False, False, True, False]
    assert first[2].event_id == first[0].event_id
    assert len({s.event_id for s in first}) == 3
    with sessions() as session, session.begin():
        second = store_events(session, [event("c"), event("b"), event("a"), event("c")], now)
    assert [s.duplicate for s in second] == [False, True, True, True]
    assert (second[1].event_id, second[2].event_id) == (first[1].event_id, first[0].event_id)
    assert second[3].event_id == second[0].event_id
    assert len(stored(sessions)) == 4


async def test_a_failing_group_stores_nothing_and_fails_every_member(
    sessions: sessionmaker[Session], vault: PhoneVault, poison: str
) -> None:
    woken: list[int] = []
    writer = EventWriter(sessions, vault, woken.append, gather_seconds=0.05)
    ids = [f"fine-{n}" for n in range(9)] + [poison]
    results = await asyncio.gather(*(writer.submit(incoming(i)) for i in ids), return_exceptions=True)
    assert all(isinstance(result, NotStoredError) for result in results), results
    assert stored(sessions) == []  # nothing half-stored
    assert woken == []
    # The next group, without the poison, is stored: the writer is not stuck on the failure.
    again = await asyncio.gather(*(writer.submit(incoming(i)) for i in ids[:9]))
    assert [result.duplicate for result in again] == [False] * 9
    assert sorted(row.provider_id for row in stored(sessions)) == sorted(ids[:9])
    assert woken == [max(result.event_id for result in again)]


async def test_a_failing_group_answers_503_over_http_and_keeps_none_of_it(
    client: Client, sessions: sessionmaker[Session], poison: str
) -> None:
    """Through the app, concurrent MOs with one the database refuses: the poisoned one is
    answered 503 (Kannel retries it), every other one either 200 and stored or 503 and not
    stored (it shared the failed group); retried, every 503'd good one is stored."""
    calls = [mo(n) for n in range(40)] + [mo(99, poison)]
    answers = await asyncio.gather(*(client.get(MO, params=params) for params in calls))
    status = {params["id"]: answer.status for params, answer in zip(calls, answers, strict=True)}
    assert status[poison] == 503
    assert set(status.values()) <= {200, 503}
    for answer in answers:
        if answer.status == 503:
            assert (await answer.json())["error"] == "storage_unavailable"
    kept = {row.provider_id for row in stored(sessions)}
    assert kept == {provider_id for provider_id, code in status.items() if code == 200}
    retried = [params for params in calls if status[params["id"]] == 503 and params["id"] != poison]
    again = await asyncio.gather(*(client.get(MO, params=params) for params in retried))
    assert {answer.status for answer in again} <= {200}
    assert {row.provider_id for row in stored(sessions)} == {f"grouped-{n}" for n in range(40)}


async def test_a_full_queue_refuses_at_once(sessions: sessionmaker[Session], vault: PhoneVault) -> None:
    """Beyond max_waiting events waiting for a group, submit refuses without waiting (503)."""
    woken: list[int] = []
    writer = EventWriter(sessions, vault, woken.append, gather_seconds=0.05, max_waiting=5)
    results = await asyncio.gather(
        *(writer.submit(incoming(f"q-{n}")) for n in range(8)), return_exceptions=True
    )
    assert [type(result) is WriterBusyError for result in results] == [False] * 5 + [True] * 3
    assert sorted(row.provider_id for row in stored(sessions)) == [f"q-{n}" for n in range(5)]
    assert len(woken) == 1


async def test_delivery_reports_arriving_with_mos_are_applied_once(
    client: Client, sessions: sessionmaker[Session], vault: PhoneVault, dispatcher: RecordingDispatcher
) -> None:
    """Reports arriving with a burst of MOs (each kind grouped by its own writer): each report
    applied to its row and closed when stored, a repeated report answered 'duplicate', only the
    MOs wake the workers."""
    with sessions() as session, session.begin():
        ids = []
        for n in range(20):
            message = outbox.add_message(
                session, dedupe_key=f"test:grouped:{n}", channel=Channel.SMS,
                recipient_enc=vault.encrypt("+84912345678"), text="Cam on ban",
            )  # fmt: skip
            message.status = OutboxStatus.SENT
            session.flush()
            ids.append(message.id)

    def dlr(ref: int) -> dict[str, str]:
        return {"ref": str(ref), "msg": "abc", "token": dlr_token(KANNEL_TOKEN, str(ref)), "status": "1",
                "ts": "1795316137"}  # fmt: skip

    requests = [client.get(DLR, params=dlr(ref)) for ref in ids] + [
        client.get(MO, params=mo(n)) for n in range(5)
    ]
    answers = await asyncio.gather(*requests)
    assert [answer.status for answer in answers] == [200] * 25
    assert [await answer.json() for answer in answers[:20]] == [
        {"result": "applied delivered (kannel 1 delivered)"}
    ] * 20
    repeat = await client.get(DLR, params=dlr(ids[0]))
    assert await repeat.json() == {"result": "duplicate"}
    with sessions() as session:
        statuses = session.scalars(select(OutboundMessage.status).where(OutboundMessage.id.in_(ids))).all()
        assert set(statuses) == {OutboxStatus.DELIVERED}
        reports = session.scalars(select(InboundEvent).where(InboundEvent.kind == "dlr")).all()
        assert len(reports) == 20
        assert all(r.processed_at is not None and r.attempts == 1 for r in reports)
        assert {r.result for r in reports} == {"applied delivered (kannel 1 delivered)"}
        pending = session.scalar(select(func.count()).where(InboundEvent.processed_at.is_(None)))
        assert pending == 5
    assert 1 <= len(dispatcher.inbound) <= 5


async def test_two_writers_storing_the_same_events_at_once(
    sessions: sessionmaker[Session], vault: PhoneVault
) -> None:
    """Two web processes' writers (each its own thread and transaction) given the same 200 MOs
    at the same moment, as a provider retrying against another web process would: every MO is
    stored once, each is new for exactly one writer, and both name the same row. (In the same
    order: two groups inserting the same keys in opposite orders can deadlock, and PostgreSQL
    then fails one group, which answers 503 and is retried; see storage.inbound.store_events.)"""
    woken: list[int] = []
    first = EventWriter(sessions, vault, woken.append, gather_seconds=0.01)
    second = EventWriter(sessions, vault, woken.append, gather_seconds=0.01)
    ids = [f"both-{n}" for n in range(200)]
    results = await asyncio.gather(
        asyncio.gather(*(first.submit(incoming(i)) for i in ids)),
        asyncio.gather(*(second.submit(incoming(i)) for i in ids)),
    )
    one, other = results
    assert [a.event_id for a in one] == [b.event_id for b in other]
    assert all(a.duplicate != b.duplicate for a, b in zip(one, other, strict=True))
    rows = stored(sessions)
    assert sorted(row.provider_id for row in rows) == sorted(ids)
    assert {row.id for row in rows} == {a.event_id for a in one}


async def test_an_event_submitted_while_the_last_group_wakes_the_workers_is_stored(
    sessions: sessionmaker[Session], vault: PhoneVault
) -> None:
    """A group's wake-up runs after its write; an event submitted during the wake-up of the last
    group in sight is written and answered (a writer that waited for that wake-up after its last
    look at the queue left such events waiting for nobody: 40 of 40,000 MOs timed out)."""
    waking = threading.Event()
    woken: list[int] = []

    def slow_wake(newest: int) -> None:
        waking.set()
        time.sleep(0.3)
        woken.append(newest)

    writer = EventWriter(sessions, vault, slow_wake, gather_seconds=0.01)
    first = asyncio.ensure_future(writer.submit(incoming("during-1")))
    assert await asyncio.to_thread(waking.wait, 10)
    second = await asyncio.wait_for(writer.submit(incoming("during-2")), timeout=10)
    assert not (await first).duplicate
    assert not second.duplicate
    assert sorted(row.provider_id for row in stored(sessions)) == ["during-1", "during-2"]
