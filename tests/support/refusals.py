"""A database that refuses one row: a real failure inside a transaction, for the tests of what a
failing group of writes leaves behind (nothing), on PostgreSQL and SQLite alike."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["refusing"]


@contextmanager
def refusing(sessions: sessionmaker[Session], table: str, event: str, condition: str) -> Iterator[None]:
    """While open, `event` ("INSERT" or "UPDATE") on a row of `table` for which `condition`
    holds (written over NEW or OLD, e.g. "NEW.provider_id = 'poison'") raises in the database."""
    with sessions() as session, session.begin():
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text(
                "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF {condition} THEN RAISE EXCEPTION 'refused by the test'; END IF; "
                "RETURN NEW; END $$"
            ))  # fmt: skip
            session.execute(text(
                f"CREATE TRIGGER refuse_poison BEFORE {event} ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION refuse_poison()"
            ))  # fmt: skip
        else:
            session.execute(text(
                f"CREATE TRIGGER refuse_poison BEFORE {event} ON {table} "
                f"WHEN {condition} BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            ))  # fmt: skip
    try:
        yield
    finally:
        with sessions() as session, session.begin():
            if session.get_bind().dialect.name == "postgresql":
                session.execute(text(f"DROP TRIGGER IF EXISTS refuse_poison ON {table}"))
                session.execute(text("DROP FUNCTION IF EXISTS refuse_poison()"))
            else:
                session.execute(text("DROP TRIGGER IF EXISTS refuse_poison"))
