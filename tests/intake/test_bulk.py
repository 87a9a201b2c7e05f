"""storage.bulk on the real database: `among` finds values whatever they hold (the joined string
PostgreSQL splits, or the array when a value holds the separator), and insert_rows gives back the
ids it drew and skips a case_id stored before (the staged path after the direct COPY fails)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from storage.bulk import among, insert_rows
from storage.models import Case


def case_row(case_id: str, agency_id: int) -> dict[str, object]:
    now = datetime.now(UTC)
    return {"case_id": case_id, "agency_id": agency_id, "procedure_code": "1.001612", "closed_at": now,
            "outcome": "not_sampled", "created_at": now}  # fmt: skip


def test_among_and_insert_rows(sessions: sessionmaker[Session], registry: dict[str, int]) -> None:
    agency = registry["HN-TX-HD"]
    with sessions() as session, session.begin():
        first = insert_rows(
            session,
            Case.__table__,  # type: ignore[arg-type]
            [case_row(case_id, agency) for case_id in ("b", "a\x1fz", "c")],
            returning=("case_id", "id"),
            skip_conflicts_on="case_id",
        )
    with sessions() as session, session.begin():
        stored = {case_id: pk for case_id, pk in session.execute(select(Case.case_id, Case.id))}
        assert dict(first) == stored
        assert len(stored) == 3
        for wanted in (["a\x1fz", "c"], ["b", "c", "missing"]):
            found = session.scalars(select(Case.case_id).where(among(session, Case.case_id, wanted)))
            assert sorted(found) == sorted(set(wanted) & set(stored))
        again = insert_rows(
            session,
            Case.__table__,  # type: ignore[arg-type]
            [case_row(case_id, agency) for case_id in ("c", "d")],
            returning=("case_id", "id"),
            skip_conflicts_on="case_id",
        )
        assert [case_id for case_id, _pk in again] == ["d"]
        assert session.scalar(select(Case.id).where(Case.case_id == "d")) == again[0][1]
