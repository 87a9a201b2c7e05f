"""Many rows into one table in one round trip: COPY on PostgreSQL, multi-row INSERT elsewhere.

The intake writes a batch of cases, surveys and timers at once (an API batch of 1,000, or a bulk
import). Adding ORM objects one by one costs a statement and its bookkeeping per row; here a
batch is one COPY (PostgreSQL: into the table itself, its ids drawn from the table's sequence
beforehand when the caller needs them back; through a temporary table and INSERT … SELECT … ON
CONFLICT when a row conflicts or other columns must be read back) or one executemany that
SQLAlchemy folds into multi-row INSERTs (SQLite). Values are given as the ORM would take them
(enums, aware datetimes, dicts for JSON): each column's own SQLAlchemy type converts them, and
columns left out get their Python-side defaults, so the rows equal what `session.add` would have
written.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import JSON, Column, ColumnElement, Dialect, String, Table, any_, func, insert, literal
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import InstrumentedAttribute, Session

__all__ = ["among", "insert_rows"]

_stages = itertools.count(1)


# Joins the values of `among`'s one parameter: a C0 control the intake refuses in every text it
# stores (flows.intake), so no case_id or hash contains it.
_SEPARATOR = "\x1f"


def among(
    session: Session, column: InstrumentedAttribute[str | None], values: Sequence[str]
) -> ColumnElement[bool]:
    """`column` is one of `values`: `= ANY(array)` on PostgreSQL, one parameter whatever the
    number of values (an IN list of thousands makes the driver and SQLAlchemy rewrite the statement
    text every time, a fifth of a batch's time when measured), IN elsewhere. The array travels as
    one string split by PostgreSQL: psycopg dumps a list parameter element by element in Python
    (26 ms for 5,000 hashes against 2 ms for the joined string, measured)."""
    if session.get_bind().dialect.name != "postgresql":
        return column.in_(values)
    joined = _SEPARATOR.join(values)
    if values and joined.count(_SEPARATOR) == len(values) - 1:
        return column == any_(func.string_to_array(literal(joined, String), _SEPARATOR))
    return column == any_(literal(list(values), postgresql.ARRAY(String)))


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
    """COPY straight into the table when nothing comes back or the ids can be drawn first (see
    _copy_with_ids); otherwise through a temporary table and one INSERT … SELECT."""
    cursor = session.connection().connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    writer = _Writer(cursor, table, list(rows[0].keys()), session.get_bind().dialect)
    if not returning and conflict is None:
        writer.copy(cursor, sql.Identifier(table.name), rows)
        return []
    if _ids_drawn_first(table, writer.given, returning):
        found = _copy_with_ids(cursor, writer, rows, returning, conflict)
        if found is not None:
            return found
    return _copy_staged(cursor, writer, rows, returning, conflict)


def _ids_drawn_first(table: Table, given: Sequence[str], returning: Sequence[str]) -> bool:
    """Whether the table's ids come from a sequence we can draw from, and every column to give
    back is the id or a given one (so nothing needs to be read back from the table)."""
    id_column = table.c.get("id")
    return (
        id_column is not None
        and id_column.primary_key
        and id_column.autoincrement in (True, "auto")
        and "id" not in given
        and all(name == "id" or name in given for name in returning)
    )


def _copy_with_ids(
    cursor: Any,
    writer: _Writer,
    rows: Sequence[Mapping[str, Any]],
    returning: Sequence[str],
    conflict: str | None,
) -> list[tuple[Any, ...]] | None:
    """The rows' ids drawn from the table's sequence, then one COPY into the table itself: no
    temporary table, no INSERT … SELECT (PostgreSQL's CPU for a case row 21.8 -> 17.7 µs,
    measured). A row that conflicts (stored meanwhile by a concurrent transaction) fails the
    COPY: it is undone to its savepoint and None is returned, for the staged path to skip it."""
    ordered = sorted(rows, key=lambda row: row[conflict]) if conflict else rows
    table = writer.table
    cursor.execute(
        sql.SQL("SELECT nextval(pg_get_serial_sequence({}, 'id')) FROM generate_series(1, %s)").format(
            sql.Literal(table.name)
        ),
        (len(ordered),),
    )
    ids = [row[0] for row in cursor.fetchall()]
    if conflict is not None:
        cursor.execute("SAVEPOINT bulk_copy")
    try:
        writer.copy(cursor, sql.Identifier(table.name), ordered, ids)
    except psycopg.errors.UniqueViolation:
        cursor.execute("ROLLBACK TO SAVEPOINT bulk_copy")
        return None
    if conflict is not None:
        cursor.execute("RELEASE SAVEPOINT bulk_copy")
    columns = [ids if name == "id" else [row[name] for row in ordered] for name in returning]
    return list(zip(*columns, strict=True))


def _copy_staged(
    cursor: Any,
    writer: _Writer,
    rows: Sequence[Mapping[str, Any]],
    returning: Sequence[str],
    conflict: str | None,
) -> list[tuple[Any, ...]]:
    """COPY into a temporary table, then one INSERT … SELECT that skips conflicts and returns."""
    table_name = sql.Identifier(writer.table.name)
    stage = sql.Identifier(f"_bulk_{writer.table.name}_{next(_stages)}")
    names = writer.names()
    cursor.execute(
        sql.SQL("CREATE TEMPORARY TABLE {} AS SELECT {} FROM {} WITH NO DATA").format(
            stage, names, table_name
        )
    )
    writer.copy(cursor, stage, rows)
    statement = sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(table_name, names, names, stage)
    if conflict is not None:
        statement += sql.SQL(" ORDER BY {0} ON CONFLICT ({0}) DO NOTHING").format(sql.Identifier(conflict))
    if returning:
        statement += sql.SQL(" RETURNING {}").format(sql.SQL(", ").join(map(sql.Identifier, returning)))
    cursor.execute(statement)
    found = [tuple(row) for row in cursor.fetchall()] if returning else []
    cursor.execute(sql.SQL("DROP TABLE {}").format(stage))
    return found


# Binary COPY (a tenth of the client's CPU of text COPY for a case row, measured: the text
# formatting of timestamps and strings was the largest single cost of an import) needs each
# value in its column's binary form: the dumper for each server type. Text, varchar and json
# share the text's bytes. A table with a column of another type is written as text.
_BINARY_DUMPERS = {
    "text": "text",
    "varchar": "text",
    "json": "text",
    "int2": "int2",
    "int4": "int4",
    "int8": "int8",
    "float4": "float4",
    "float8": "float8",
    "bool": "bool",
    "date": "date",
    "timestamp": "timestamp",
    "timestamptz": "timestamptz",
}


class _Writer:
    """Rows of one table as COPY takes them: the given columns, then those with a Python-side
    default, each value through its column type's bind processor when it has one; in binary
    when every column's server type has a dumper in _BINARY_DUMPERS."""

    def __init__(self, cursor: Any, table: Table, given: list[str], dialect: Dialect) -> None:
        self.table = table
        self.given = given
        self.columns = _columns(table, given)
        self.defaults = [_default(column) for column in self.columns[len(given) :]]
        processors = [_processor(column, dialect) for column in self.columns]
        self.converted = [(index, process) for index, process in enumerate(processors) if process is not None]
        cursor.execute(
            "SELECT a.attname, t.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid"
            " WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped",
            (table.name,),
        )
        self.server_types: dict[str, str] = dict(cursor.fetchall())

    def names(self, *, with_id: bool = False) -> sql.Composable:
        columns = ([self.table.c.id] if with_id else []) + self.columns
        return sql.SQL(", ").join(sql.Identifier(column.name) for column in columns)

    def copy(
        self, cursor: Any, target: sql.Identifier, rows: Sequence[Mapping[str, Any]], ids: Sequence[int] = ()
    ) -> None:
        defaults, converted = self.defaults, self.converted
        pick = itemgetter(*self.given)
        single = len(self.given) == 1
        columns = ([self.table.c.id] if ids else []) + self.columns
        dumpers = [_BINARY_DUMPERS.get(self.server_types.get(column.name, "")) for column in columns]
        binary = all(dumpers)
        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(target, self.names(with_id=bool(ids)))
        with cursor.copy(statement + sql.SQL(" (FORMAT BINARY)") if binary else statement) as copy:
            if binary:
                copy.set_types(dumpers)
            for number, row in enumerate(rows):
                values = [pick(row)] if single else list(pick(row))
                values += defaults
                for index, process in converted:
                    value = values[index]
                    if value is not None:
                        values[index] = process(value)
                copy.write_row([ids[number], *values] if ids else values)


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
