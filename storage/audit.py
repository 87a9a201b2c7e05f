"""The audit log: every change to configuration, by whom, when, before and after, in a hash chain.

Each row's hash is SHA-256 over the previous row's hash and the row's own content (id, time,
actor, action, target, agency, before, after) as canonical JSON. Editing a row changes its hash;
deleting or inserting one breaks the link of the row after it. `verify` walks the chain and names
the first row that does not fit. (Deleting the newest rows leaves a shorter valid chain: copies
of the latest hash kept elsewhere, such as the nightly logs, are what detect that.)

Writers are serialised so the chain never forks: PostgreSQL by a transaction-scoped advisory lock,
SQLite by its single writer (storage.db begins every transaction IMMEDIATE); the unique
`prev_hash` column is the last line of defence.

Usage from any layer that changes configuration, inside the transaction making the change:

    audit.append(session, actor="admin", action="users.add", target="user:lan",
                 before=None, after={"role": "supervisor"}, agency_id=agency.id)
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from storage.models import AuditEntry

__all__ = ["GENESIS", "BrokenRow", "append", "cli_actor", "entry_hash", "verify"]

GENESIS = "0" * 64  # the prev_hash of the first row
_LOCK_KEY = 0x5199A5_A0D1  # pg_advisory_xact_lock key of the audit chain


@dataclass(frozen=True)
class BrokenRow:
    """The first row where the chain does not hold, and why."""

    id: int
    reason: str


def cli_actor() -> str:
    """The actor of a change made by a `sipas` command: the operating-system account running it."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no USER variable (some containers)
        name = f"uid{os.getuid()}"
    return f"cli:{name}"


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def entry_hash(
    prev_hash: str,
    *,
    id: int,
    at: datetime,
    actor: str,
    action: str,
    target: str,
    agency_id: int | None,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
) -> str:
    """The hash a row with this content must carry after `prev_hash`."""
    content = {
        "id": id,
        "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor": actor,
        "action": action,
        "target": target,
        "agency_id": agency_id,
        "before": before,
        "after": after,
    }
    return hashlib.sha256((prev_hash + _canonical(content)).encode("utf-8")).hexdigest()


def _lock_chain(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})


def _jsonable(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The JSON form the database will give back (dates as text), so the hash survives a round trip."""
    return None if value is None else json.loads(_canonical(value))


def append(
    session: Session,
    actor: str,
    action: str,
    target: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    *,
    agency_id: int | None = None,
) -> AuditEntry:
    """Record one change in the caller's transaction (it is kept only if the change commits).

    actor: who did it ("lan" for a page user, "cli:root" for a `sipas` command);
    action: what kind of change, dotted ("users.add", "flows.publish", "agencies.update");
    target: what it was done to ("user:lan", "agency:HN-TX-HD");
    before/after: the changed fields (None for a creation or a deletion); never secrets;
    agency_id: the agency it concerns, so staff see the entries of their subtree.
    """
    _lock_chain(session)
    last = session.execute(
        select(AuditEntry.id, AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)
    ).first()
    prev_hash = last.hash if last is not None else GENESIS
    next_id = (last.id if last is not None else 0) + 1
    at = datetime.now(UTC)
    before_json, after_json = _jsonable(before), _jsonable(after)
    entry = AuditEntry(
        id=next_id,
        at=at,
        actor=actor,
        action=action,
        target=target,
        agency_id=agency_id,
        before=before_json,
        after=after_json,
        prev_hash=prev_hash,
        hash=entry_hash(
            prev_hash,
            id=next_id,
            at=at,
            actor=actor,
            action=action,
            target=target,
            agency_id=agency_id,
            before=before_json,
            after=after_json,
        ),
    )
    session.add(entry)
    session.flush()
    return entry


def _rows(session: Session, batch: int = 1000) -> Iterator[AuditEntry]:
    last_id = 0
    while True:
        chunk = session.scalars(
            select(AuditEntry).where(AuditEntry.id > last_id).order_by(AuditEntry.id).limit(batch)
        ).all()
        if not chunk:
            return
        yield from chunk
        last_id = chunk[-1].id
        session.expunge_all()


def verify(session: Session) -> BrokenRow | None:
    """Walk the chain from the first row; None when intact, else the first row that breaks it."""
    prev_hash = GENESIS
    for row in _rows(session):
        if row.prev_hash != prev_hash:
            return BrokenRow(row.id, "does not follow the previous row (a row was removed or inserted)")
        expected = entry_hash(
            prev_hash,
            id=row.id,
            at=row.at,
            actor=row.actor,
            action=row.action,
            target=row.target,
            agency_id=row.agency_id,
            before=row.before,
            after=row.after,
        )
        if row.hash != expected:
            return BrokenRow(row.id, "its content does not match its hash (the row was edited)")
        prev_hash = row.hash
    return None
