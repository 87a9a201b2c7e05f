"""What every faults test does alike: a closed case to post, and a count read from the database."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker


def closed_case(case_id: str, **fields: object) -> dict[str, object]:
    """A case of HN-TX-HD closed now, by phone unless `fields` say otherwise (a Zalo user id)."""
    case: dict[str, object] = {
        "case_id": case_id,
        "agency_code": "HN-TX-HD",
        "procedure_code": "1.001612",
        "closed_at": datetime.now(UTC).isoformat(),
    }
    return case | fields


def count(sessions: sessionmaker[Session], query: object) -> int:
    """The scalar a count query gives, read in a session of its own."""
    with sessions() as session:
        return int(session.scalar(query) or 0)  # type: ignore[call-overload]
