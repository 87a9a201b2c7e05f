"""Many rows into one table in one round trip: COPY on PostgreSQL, multi-row INSERT elsewhere.

The intake writes a batch of cases, surveys and timers at once (an API batch of 1,000, or a bulk
import). Adding ORM objects one by one costs a statement and its bookkeeping per row; here a
batch is one COPY (PostgreSQL; rows go through a temporary table when the caller needs their ids
back or wants conflicting rows skipped) or one executemany that SQLAlchemy folds into multi-row
INSERTs (SQLite). Values are given as the ORM would take them (enums, aware datetimes, dicts for
JSON): each column's own SQLAlchemy type converts them, and columns left out get their Python-side
defaults, so the rows equal what `session.add` would have written.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from psycopg import sql
from sqlalchemy import JSON, Column, ColumnElement, Dialect, String, Table, any_, insert, literal
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import InstrumentedAttribute, Session

__all__ = ["among", "insert_rows"]

_stages = itertools.count(1)


def among(
    session: Session, column: InstrumentedAttribute[str | None], values: Sequence[str]
) -> ColumnElement[bool]:
    """`column` is one of `values`: `= ANY(array)` on PostgreSQL, one parameter whatever the
    number of values (an IN list of thousands makes the driver and SQLAlchemy rewrite the statement
    text every time, a fifth of a batch's time when measured), IN elsewhere."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(literal(list(values), postgresql.ARRAY(String)))
    return column.in_(values)


def insert_rows(
    session: Session,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    returning: Sequence[str] = (),
    skip_conflicts_on: str | None = None,
) -> list[tuple[Any, ...]]:
    """Insert `rows` (all with the same keys) in the session's transaction.

    `returning` names columns to give back for each inserted row (in no particular order);
    `skip_conflicts_on` names a unique column: a row whose value is already stored (or is being
    stored by a concurrent transaction that then commits) is skipped instead of failing the batch,
    and is absent from what is returned. Rows are written in the order of that column, so two
    concurrent batches take their row locks in one order and cannot deadlock."""
    if not rows:
        return []
    if session.get_bind().dialect.name == "postgresql":
        return _copy(session, table, rows, returning, skip_conflicts_on)
    return _insert(session, table, rows, returning, skip_conflicts_on)


def _columns(table: Table, given: Sequence[str]) -> list[Column[Any]]:
    """The given columns plus those left out that have a Python-side default."""
    names = set(given)
    extra = [c for c in table.columns if c.name not in names and c.default is not None]
    return [table.c[name] for name in given] + extra


def _default(column: Column[Any]) -> Any:
    default = column.default
    assert default is not None
    if getattr(default, "is_scalar", False):
        return default.arg  # type: ignore[attr-defined]
    if getattr(default, "is_callable", False):
        return default.arg(None)  # type: ignore[attr-defined]
    raise ValueError(f"{column}: only scalar and Python-callable defaults can be bulk-inserted")


def _processor(column: Column[Any], dialect: Dialect) -> Callable[[Any], Any] | None:
    """How a Python value of the column becomes what COPY takes (JSON goes as its text; the
    driver, not SQLAlchemy, would otherwise serialise it)."""
    if isinstance(column.type, JSON):
        return json.dumps
    return column.type.bind_processor(dialect)


def _copy(
    session: Session,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    returning: Sequence[str],
    conflict: str | None,
) -> list[tuple[Any, ...]]:
    dialect = session.get_bind().dialect
    given = list(rows[0].keys())
    columns = _columns(table, given)
    defaults = [_default(column) for column in columns[len(given) :]]
    processors = [_processor(column, dialect) for column in columns]
    names = sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)
    table_name = sql.Identifier(table.name)
    direct = not returning and conflict is None
    target = table_name if direct else sql.Identifier(f"_bulk_{table.name}_{next(_stages)}")
    cursor = session.connection().connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    if not direct:
        cursor.execute(
            sql.SQL("CREATE TEMPORARY TABLE {} AS SELECT {} FROM {} WITH NO DATA").format(
                target, names, table_name
            )
        )
    with cursor.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(target, names)) as copy:
        for row in rows:
            values = [row[name] for name in given] + defaults
            copy.write_row(
                [value if process is None or value is None else process(value)
                 for value, process in zip(values, processors, strict=True)]
            )  # fmt: skip
    if direct:
        return []
    statement = sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(table_name, names, names, target)
    if conflict is not None:
        statement += sql.SQL(" ORDER BY {0} ON CONFLICT ({0}) DO NOTHING").format(sql.Identifier(conflict))
    if returning:
        statement += sql.SQL(" RETURNING {}").format(sql.SQL(", ").join(map(sql.Identifier, returning)))
    cursor.execute(statement)
    found = [tuple(row) for row in cursor.fetchall()] if returning else []
    cursor.execute(sql.SQL("DROP TABLE {}").format(target))
    return found


def _insert(
    session: Session,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    returning: Sequence[str],
    conflict: str | None,
) -> list[tuple[Any, ...]]:
    ordered = sorted(rows, key=lambda row: row[conflict]) if conflict else list(rows)
    if conflict is not None:
        dialect_insert = sqlite.insert if session.get_bind().dialect.name == "sqlite" else postgresql.insert
        statement: Any = dialect_insert(table).on_conflict_do_nothing(index_elements=[conflict])
    else:
        statement = insert(table)
    if returning:
        statement = statement.returning(*(table.c[name] for name in returning))
        return [tuple(row) for row in session.execute(statement, ordered)]
    session.execute(statement, ordered)
    return []
