"""Grouped writes of webhook events: what arrives together is stored in one transaction.

A webhook must not be answered 2xx before its event is committed, and a transaction per webhook
(a thread hop, an ORM session, a COMMIT, then another thread hop for the wake-up) was most of
what an acknowledgement cost (docs/benchmarks.md, 2026-11-30 late evening). The web process
keeps one EventWriter per AppContext; every webhook view hands its event to it (`submit`,
through bot.channels.intake) and waits. The writer gathers the events arriving within
GATHER_SECONDS of an idle moment, and under load everything that arrived while the previous
group was being written (at most MAX_GROUP), then writes the group through ONE thread hop:
payloads encrypted, ONE multi-row `INSERT … ON CONFLICT (provider, provider_id) DO NOTHING
RETURNING` (storage.inbound.store_events), ONE COMMIT. Then ONE coalesced wake-up of the inbound
drain for the group's new events, and only then does each member get its answer.

Delivery reports are grouped the same way by a sibling writer (ReportWriter, the same gathering
with another transaction: `write_reports`): the group's reports stored in one INSERT, the
outbox rows they name locked in one statement in id order, then written back by primary key
(storage.outbox.apply_delivery_reports), the reports closed likewise, one COMMIT. Their
rows are locked in the order every multi-row lock of the outbox takes (ascending id), so a group
of reports and the send drain settling its batch cannot deadlock, as they did when a group
locked its rows in arrival order (docs/benchmarks.md, 2026-11-30 late evening: 127 of 20,000
requests answered 503). A sibling rather than the same groups: a report group may wait for
the send drain's row locks, and an MO never waits for that.

A group that fails (the database is down or refuses it) fails every member and leaves nothing of
the group stored: each view answers 503 and the provider sends its event again. At most
MAX_WAITING events wait for a group; beyond that `submit` refuses at once (503 too), so a stalled
database cannot make the process hold an unbounded backlog of requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, Generic, TypeVar

import structlog
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from bot.channels.sms import DeliveryReport
from storage import inbound, outbox
from storage.crypto import PhoneVault
from storage.inbound import NewEvent, Stored

__all__ = [
    "DISPATCH_TIMEOUT",
    "GATHER_SECONDS",
    "MAX_GROUP",
    "MAX_WAITING",
    "EventWriter",
    "GroupWriter",
    "Incoming",
    "IncomingReport",
    "NotStoredError",
    "ReportWriter",
    "WriterBusyError",
    "write_group",
    "write_reports",
]

log = structlog.get_logger(__name__)

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")

# How long the first event after an idle moment waits for others to join its group. Under load
# the wait is the previous group's write, so this only adds latency when traffic is light.
GATHER_SECONDS = 0.002
# Bind parameters per INSERT: 7 a row, within SQLite's 32,766 and PostgreSQL's 65,535.
MAX_GROUP = 1000
# Events waiting for a group before new ones are refused (503, retry): about 2 KB each.
MAX_WAITING = 5000
# Handing over to the queue must not eat the 2 s a provider gives us; a missed hand-over is
# recovered by the sweep of unprocessed events, because the events are already stored.
DISPATCH_TIMEOUT = 1.0


class NotStoredError(SQLAlchemyError):
    """The event was not stored (its group's transaction failed, or too many wait). An
    SQLAlchemyError, so that every webhook view's "could not store, retry" answer (503,
    bot.channels.intake.storage_unavailable) covers it as it covers a failed write of its own."""


class WriterBusyError(NotStoredError):
    """MAX_WAITING events already wait for a group: refused at once, the provider retries."""


@dataclass(frozen=True)
class Incoming:
    """One event as a view hands it over. `payload` is the raw request as the worker will parse
    it again (encrypted by the writer); `sender` the citizen's normalised number or id (only its
    keyed hash is stored)."""

    provider: str
    kind: str
    provider_id: str
    payload: str
    sender: str | None


@dataclass(frozen=True)
class IncomingReport:
    """A delivery report as a view hands it over: `payload` the raw request, stored encrypted."""

    provider: str
    report: DeliveryReport
    payload: str


class GroupWriter(Generic[ItemT, ResultT]):
    """Gathers the items of concurrent webhooks into groups, one transaction each (module doc):
    `write(items, now)` is that transaction (blocking: run in a thread; returns one result per
    item, in order, or raises and stores nothing); `after(results)`, when given, runs on the loop
    once the group is committed, before any member is answered. Holds no connection."""

    def __init__(
        self,
        write: Callable[[Sequence[ItemT], datetime], list[ResultT]],
        after: Callable[[list[ResultT]], Awaitable[None]] | None = None,
        *,
        gather_seconds: float = GATHER_SECONDS,
        max_group: int = MAX_GROUP,
        max_waiting: int = MAX_WAITING,
    ) -> None:
        self._write_group = write
        self._after = after
        self._gather_seconds = gather_seconds
        self._max_group = max_group
        self._max_waiting = max_waiting
        self._waiting: list[tuple[ItemT, asyncio.Future[ResultT]]] = []
        self._task: asyncio.Task[None] | None = None
        self._answering: asyncio.Task[None] | None = None  # the last group's `after` and answers

    async def submit(self, item: ItemT) -> ResultT:
        """Store `item` with the group it falls into; returns once that group is committed (and
        its `after` done). Raises NotStoredError if the group failed, WriterBusyError if too
        many items already wait."""
        if len(self._waiting) >= self._max_waiting:
            raise WriterBusyError(f"{len(self._waiting)} events already wait to be stored")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ResultT] = loop.create_future()
        self._waiting.append((item, future))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run())
        return await future

    async def _run(self) -> None:
        """Write groups until nobody waits: the first after GATHER_SECONDS, each next one from
        what arrived while the previous was written. One group written at a time, so event ids
        follow arrival across groups too (a sender's events are processed in id order); two at
        once measured no faster (docs/benchmarks.md). A group's `after` (the wake-up: a thread
        hop and a Redis round trip) and its answers run while the next group is written, at most
        one such group at a time."""
        await asyncio.sleep(self._gather_seconds)
        while self._waiting:
            group, self._waiting = self._waiting[: self._max_group], self._waiting[self._max_group :]
            await self._write(group)
        # Nothing may be awaited after the last look at `_waiting`: an item submitted meanwhile
        # would find this task not done, start none, and wait for nobody (it did: 40 of 40,000
        # MOs timed out before this). The last group's answering task finishes on its own, and
        # the next task's first write waits for it.

    async def _write(self, group: list[tuple[ItemT, asyncio.Future[ResultT]]]) -> None:
        try:
            written = await self._store(group)
            if written is not None:
                if self._answering is not None:  # the previous group's wake-up, run during this write
                    await asyncio.wait([self._answering])
                self._answering = asyncio.get_running_loop().create_task(self._answer(group, written))
        except BaseException:  # this task cancelled (the process stops): no member waits forever
            _cancel(group)
            raise

    async def _store(self, group: list[tuple[ItemT, asyncio.Future[ResultT]]]) -> list[ResultT] | None:
        """The group written and committed, or None when it failed (every member then fails)."""
        items = [item for item, _future in group]
        try:
            return await asyncio.to_thread(self._write_group, items, datetime.now(UTC))
        except Exception as exc:  # nothing of the group is stored: each member answers 503
            if not isinstance(exc, SQLAlchemyError):
                log.exception("webhook events not stored", events=len(items))
            else:
                log.error("webhook events not stored", events=len(items), error=type(exc).__name__)
            for _item, future in group:
                if not future.done():
                    error = NotStoredError(f"a group of {len(items)} events was not stored")
                    error.__cause__ = exc
                    future.set_exception(error)
            return None

    async def _answer(
        self, group: list[tuple[ItemT, asyncio.Future[ResultT]]], written: list[ResultT]
    ) -> None:
        """`after`, then every member's answer: a group is answered only once it is committed and
        its `after` done."""
        try:
            if self._after is not None:
                await self._after(written)
        except BaseException:  # cancelled (the process stops): no member waits forever
            _cancel(group)
            raise
        for (_item, future), result in zip(group, written, strict=True):
            if not future.done():
                future.set_result(result)


def _cancel(group: Sequence[tuple[object, asyncio.Future[Any]]]) -> None:
    for _item, future in group:
        future.cancel()


class EventWriter(GroupWriter[Incoming, Stored]):
    """The writer of events the workers process (MOs, Zalo events): `write_group`, then one
    coalesced wake-up `wake(newest_event_id)` (JobDispatcher.inbound_received) per group with new
    events."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        vault: PhoneVault,
        wake: Callable[[int], None],
        *,
        gather_seconds: float = GATHER_SECONDS,
        max_group: int = MAX_GROUP,
        max_waiting: int = MAX_WAITING,
    ) -> None:
        super().__init__(
            partial(write_group, sessions, vault),
            self._wake_inbound,
            gather_seconds=gather_seconds,
            max_group=max_group,
            max_waiting=max_waiting,
        )
        self._wake = wake

    async def _wake_inbound(self, written: list[Stored]) -> None:
        new = [stored.event_id for stored in written if not stored.duplicate]
        if not new:
            return
        newest = max(new)
        try:
            await asyncio.wait_for(asyncio.to_thread(self._wake, newest), timeout=DISPATCH_TIMEOUT)
        except Exception as exc:  # stored and committed: the sweep of unprocessed events picks them up
            log.warning(
                "inbound not dispatched; left for the sweep", event_id=newest, error=type(exc).__name__
            )


class ReportWriter(GroupWriter[IncomingReport, str]):
    """The writer of delivery reports (`write_reports`): nothing to wake, a report is applied in
    the transaction that stores it."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        vault: PhoneVault,
        *,
        gather_seconds: float = GATHER_SECONDS,
        max_group: int = MAX_GROUP,
        max_waiting: int = MAX_WAITING,
    ) -> None:
        super().__init__(
            partial(write_reports, sessions, vault),
            gather_seconds=gather_seconds,
            max_group=max_group,
            max_waiting=max_waiting,
        )


def write_group(
    sessions: sessionmaker[Session], vault: PhoneVault, items: Sequence[Incoming], now: datetime
) -> list[Stored]:
    """Blocking, one transaction: every item stored once, duplicates told apart (in order).
    Raises, and stores nothing, if any of it fails."""
    events = [
        NewEvent(item.provider, item.kind, item.provider_id, vault.encrypt(item.payload),
                 vault.lookup_hash(item.sender) if item.sender else None)
        for item in items
    ]  # fmt: skip
    with sessions() as session, session.begin():
        return inbound.store_events(session, events, now)


def write_reports(
    sessions: sessionmaker[Session], vault: PhoneVault, items: Sequence[IncomingReport], now: datetime
) -> list[str]:
    """Blocking, one transaction: every report stored once (a provider retry of one, in the group
    or stored before, is "duplicate" and not applied again), the new ones applied to the outbox
    rows they name (storage.outbox.apply_delivery_reports: locked in id order) and closed with
    what applying did: "applied <status> (<provider's words>)" or "unknown message" (a report for
    a row we do not have is stored and answered 2xx: retrying cannot make it known). The reports
    are inserted in (provider, provider_id) order, so two web processes' groups holding the same
    reports take their keys in the same order too. Raises, and stores nothing, if any of it fails."""
    order = sorted(range(len(items)), key=lambda i: (items[i].provider, items[i].report.provider_id))
    events = [
        NewEvent(items[i].provider, "dlr", items[i].report.provider_id, vault.encrypt(items[i].payload), None)
        for i in order
    ]
    with sessions() as session, session.begin():
        stored = dict(zip(order, inbound.store_events(session, events, now), strict=True))
        new = [i for i in range(len(items)) if not stored[i].duplicate]  # in arrival order
        named = {
            i: message_id
            for i in new
            if 0 < (message_id := _outbox_id(items[i].report.ref)) <= _MAX_OUTBOX_ID
        }
        exists = outbox.apply_delivery_reports(
            session,
            [
                outbox.Report(message_id, items[i].report.status, items[i].report.detail)
                for i, message_id in named.items()
            ],
            now,
        )
        known = {i for i, found in zip(named, exists, strict=True) if found}
        results = ["duplicate"] * len(items)
        for i in new:
            report = items[i].report
            results[i] = (
                f"applied {report.status.name.lower()} ({report.detail})" if i in known else "unknown message"
            )
        inbound.mark_processed(session, [(stored[i].event_id, results[i]) for i in new], now)
    return results


_MAX_OUTBOX_ID = 2**31 - 1  # larger refs cannot be one of our rows (and overflow an INTEGER key)


def _outbox_id(ref: str) -> int:
    """The outbox id a report's `ref` names, 0 when it cannot name one."""
    return int(ref) if ref.isdigit() else 0
