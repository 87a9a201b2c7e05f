"""The agency registry and its staff numbers: look-ups by code and idempotent upserts.

Imports (`sipas agencies import`, `sipas staff import`) run the same file again and again as the
registry evolves, so every write here is an upsert keyed by the agency code (or agency + phone
hash) and reports whether it created or changed something.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.models import Agency, AgencyLevel, StaffPhone

__all__ = [
    "UNCHANGED",
    "AgencyRow",
    "Unchanged",
    "add_staff_phone",
    "all_agencies",
    "get_by_code",
    "is_staff_phone",
    "remove_staff_phone",
    "set_successor",
    "staff_phones",
    "upsert_agency",
]


class Unchanged:
    """Marker for "keep what is stored" (an import file without a sampling_probability column)."""

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED = Unchanged()


@dataclass(frozen=True)
class AgencyRow:
    """One agency as an import file describes it; the parent is named by its code."""

    code: str
    name: str
    level: AgencyLevel
    parent_code: str | None
    sampling_probability: float | Unchanged | None = UNCHANGED
    # Local days the unit exists (inclusive); UNCHANGED keeps what is stored, None is open-ended.
    valid_from: date | Unchanged | None = UNCHANGED
    valid_to: date | Unchanged | None = UNCHANGED
    successor_code: str | Unchanged | None = UNCHANGED  # set after every row exists (set_successor)


def get_by_code(session: Session, code: str) -> Agency | None:
    return session.scalar(select(Agency).where(Agency.code == code))


def all_agencies(session: Session) -> Sequence[Agency]:
    """Every agency, ordered by code (the CLI builds its tree view from this)."""
    return session.scalars(select(Agency).order_by(Agency.code)).all()


def upsert_agency(session: Session, row: AgencyRow, parent: Agency | None) -> tuple[Agency, str]:
    """Create or update the agency `row.code`. Returns the row and "created", "updated" or
    "unchanged". The caller resolves `parent` (it must already be flushed, i.e. have an id)."""
    parent_id = parent.id if parent is not None else None
    agency = get_by_code(session, row.code)
    if agency is None:
        agency = Agency(
            code=row.code,
            name=row.name,
            level=row.level,
            parent_id=parent_id,
            sampling_probability=_given(row.sampling_probability),
            valid_from=_given(row.valid_from),
            valid_to=_given(row.valid_to),
        )
        session.add(agency)
        session.flush()
        return agency, "created"
    wanted: dict[str, object] = {"name": row.name, "level": row.level, "parent_id": parent_id}
    for attribute in ("sampling_probability", "valid_from", "valid_to"):
        value = getattr(row, attribute)
        if not isinstance(value, Unchanged):
            wanted[attribute] = value
    changed = False
    for attribute, value in wanted.items():
        if getattr(agency, attribute) != value:
            setattr(agency, attribute, value)
            changed = True
    if changed:
        session.flush()
    return agency, "updated" if changed else "unchanged"


_T = TypeVar("_T")


def _given(value: _T | Unchanged | None) -> _T | None:
    return None if isinstance(value, Unchanged) else value


def set_successor(session: Session, agency: Agency, successor: Agency | None) -> bool:
    """Name the unit that took `agency` over (a merger); True when that changed something."""
    successor_id = successor.id if successor is not None else None
    if agency.successor_id == successor_id:
        return False
    agency.successor_id = successor_id
    session.flush()
    return True


def is_staff_phone(session: Session, agency_id: int, phone_hash: str) -> bool:
    query = select(StaffPhone.id).where(
        StaffPhone.agency_id == agency_id, StaffPhone.phone_hash == phone_hash
    )
    return session.scalar(query) is not None


def add_staff_phone(session: Session, agency_id: int, phone_hash: str, phone_enc: str) -> bool:
    """Register a staff number of an agency (its look-up hash and the number encrypted); False
    when it was already registered. A number registered before it was kept encrypted (hash only)
    gets its encrypted form now."""
    existing = session.scalar(
        select(StaffPhone).where(StaffPhone.agency_id == agency_id, StaffPhone.phone_hash == phone_hash)
    )
    if existing is not None:
        if existing.phone_enc is None:
            existing.phone_enc = phone_enc
            session.flush()
        return False
    try:
        with session.begin_nested():
            session.add(StaffPhone(agency_id=agency_id, phone_hash=phone_hash, phone_enc=phone_enc))
    except IntegrityError:
        return False  # registered by a concurrent import in the meantime
    return True


def staff_phones(session: Session, agency_id: int) -> Sequence[StaffPhone]:
    """The staff numbers of one agency, in the order they were registered."""
    return session.scalars(
        select(StaffPhone).where(StaffPhone.agency_id == agency_id).order_by(StaffPhone.id)
    ).all()


def remove_staff_phone(session: Session, staff: StaffPhone) -> None:
    """Unregister one staff number: its citizen cases of that agency are surveyed again."""
    session.delete(staff)
    session.flush()
