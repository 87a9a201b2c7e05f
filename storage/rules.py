"""Rules set on agencies: read the rows of a chain of units, set one, remove one.

Only storage: which rules exist, what their values mean and how a unit inherits them is
flows.rules. A value is JSON (a number, a string, a list, a mapping), one row per (agency, name).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.models import AgencyRule

__all__ = ["rules_of", "set_rule", "unset_rule"]


def rules_of(session: Session, agency_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """agency id -> {rule name: value} for the given agencies (one query; units without rules absent)."""
    ids = list(agency_ids)
    found: dict[int, dict[str, Any]] = {}
    if not ids:
        return found
    rows: Sequence[AgencyRule] = session.scalars(
        select(AgencyRule).where(AgencyRule.agency_id.in_(ids))
    ).all()
    for row in rows:
        found.setdefault(row.agency_id, {})[row.name] = row.value
    return found


def set_rule(
    session: Session, agency_id: int, name: str, value: Any, *, by: str | None, now: datetime
) -> Any:
    """Set rule `name` on the agency; returns the value it had before (None when not set here)."""
    row = session.scalar(select(AgencyRule).where(AgencyRule.agency_id == agency_id, AgencyRule.name == name))
    if row is not None:
        before = row.value
        row.value, row.updated_at, row.updated_by = value, now, by
        session.flush()
        return before
    try:
        with session.begin_nested():
            session.add(
                AgencyRule(agency_id=agency_id, name=name, value=value, updated_at=now, updated_by=by)
            )
    except IntegrityError:
        # Set by a concurrent writer between our look-up and our insert: this write wins.
        return set_rule(session, agency_id, name, value, by=by, now=now)
    return None


def unset_rule(session: Session, agency_id: int, name: str) -> Any:
    """Remove the agency's own value (it inherits again); returns what it was, None when unset."""
    row = session.scalar(select(AgencyRule).where(AgencyRule.agency_id == agency_id, AgencyRule.name == name))
    if row is None:
        return None
    before = row.value
    session.execute(delete(AgencyRule).where(AgencyRule.id == row.id))
    return before
