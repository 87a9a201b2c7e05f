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

Delivery reports are not grouped (bot.channels.intake.store_and_settle): applying one locks its
outbox row, and a transaction locking the rows of many reports deadlocked with the send drain
settling its batch in another order (measured, same entry), where one row per transaction
cannot.

A group that fails (the database is down or refuses it) fails every member and leaves nothing of
the group stored: each view answers 503 and the provider sends its event again. At most
MAX_WAITING events wait for a group; beyond that `submit` refuses at once (503 too), so a stalled
database cannot make the process hold an unbounded backlog of requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from storage import inbound
from storage.crypto import PhoneVault
from storage.inbound import NewEvent, Stored

__all__ = [
    "DISPATCH_TIMEOUT",
    "GATHER_SECONDS",
    "MAX_GROUP",
    "MAX_WAITING",
    "EventWriter",
    "Incoming",
    "NotStoredError",
    "WriterBusyError",
    "write_group",
]

log = structlog.get_logger(__name__)

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


class EventWriter:
    """Gathers the events of concurrent webhooks into groups, one transaction each (module doc).
    `wake(newest_event_id)` is the coalesced hand-over (JobDispatcher.inbound_received), called
    once per group with new inbound events. Holds no connection of its own."""

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
        self._sessions = sessions
        self._vault = vault
        self._wake = wake
        self._gather_seconds = gather_seconds
        self._max_group = max_group
        self._max_waiting = max_waiting
        self._waiting: list[tuple[Incoming, asyncio.Future[Stored]]] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: Incoming) -> Stored:
        """Store `item` with the group it falls into; returns once that group is committed (and
        its wake-up attempted). Raises NotStoredError if the group failed, WriterBusyError if too
        many events already wait."""
        if len(self._waiting) >= self._max_waiting:
            raise WriterBusyError(f"{len(self._waiting)} events already wait to be stored")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Stored] = loop.create_future()
        self._waiting.append((item, future))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run())
        return await future

    async def _run(self) -> None:
        """Write groups until nobody waits: the first after GATHER_SECONDS, each next one from
        what arrived while the previous was written. One group at a time, so event ids follow
        arrival across groups too (a sender's events are processed in id order); two at once
        measured no faster (docs/benchmarks.md)."""
        await asyncio.sleep(self._gather_seconds)
        while self._waiting:
            group, self._waiting = self._waiting[: self._max_group], self._waiting[self._max_group :]
            await self._write(group)

    async def _write(self, group: list[tuple[Incoming, asyncio.Future[Stored]]]) -> None:
        try:
            await self._store(group)
        except BaseException:  # this task cancelled (the process stops): no member waits forever
            for _item, future in group:
                future.cancel()
            raise

    async def _store(self, group: list[tuple[Incoming, asyncio.Future[Stored]]]) -> None:
        items = [item for item, _future in group]
        try:
            written = await asyncio.to_thread(
                write_group, self._sessions, self._vault, items, datetime.now(UTC)
            )
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
            return
        new = [stored.event_id for stored in written if not stored.duplicate]
        if new:
            await self._wake_inbound(max(new))
        for (_item, future), result in zip(group, written, strict=True):
            if not future.done():
                future.set_result(result)

    async def _wake_inbound(self, newest: int) -> None:
        try:
            await asyncio.wait_for(asyncio.to_thread(self._wake, newest), timeout=DISPATCH_TIMEOUT)
        except Exception as exc:  # stored and committed: the sweep of unprocessed events picks them up
            log.warning(
                "inbound not dispatched; left for the sweep", event_id=newest, error=type(exc).__name__
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
