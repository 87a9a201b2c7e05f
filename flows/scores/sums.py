"""The daily counts summed per period: what every report, trend and workbook reads.

A period is read as the calendar months it covers from the monthly rows (MonthlyCount, the days
summed by the nightly job in the same transaction) and its remaining days from the daily rows, so
a year sums 12 months of rows, not 365 days of them. A month the period covers only in part is
still read as its monthly row when no day of it outside the period has rows (a period ending
yesterday, the current month's row holding the days up to yesterday).

Several periods (a trend) are read together: one query for each run of periods that do not
overlap. Rows are read as they are when each period is one day or one whole month (a day's or a
month's row is already unique per agency, channel and metric); otherwise the database sums them
per period.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Integer, Select, and_, case, func, literal, or_, select, union_all
from sqlalchemy.orm import Session

from flows.scores.counts import as_date, month_end, month_start
from flows.scores.periods import Period
from storage.models import DailyCount, DailyProcedureCount, MonthlyCount, MonthlyProcedureCount

CountTable = type[DailyCount] | type[DailyProcedureCount] | type[MonthlyCount] | type[MonthlyProcedureCount]
Filter = Callable[[CountTable], ColumnElement[bool]]  # a restriction, for whichever table is read
CountRow = tuple[int, int, str, str, Any, Any, Any, Any, Any]  # part, agency, channel, metric, n k w wk w2


@dataclass(frozen=True)
class CountSource:
    """The totals (procedure None), or the rows of the cases of one procedure: each as days and
    as months."""

    procedure: str | None = None

    @property
    def daily(self) -> type[DailyCount] | type[DailyProcedureCount]:
        return DailyCount if self.procedure is None else DailyProcedureCount

    @property
    def monthly(self) -> type[MonthlyCount] | type[MonthlyProcedureCount]:
        return MonthlyCount if self.procedure is None else MonthlyProcedureCount

    def where(self, table: CountTable) -> tuple[ColumnElement[bool], ...]:
        if self.procedure is None:
            return ()
        if table is DailyProcedureCount:
            return (DailyProcedureCount.procedure_code == self.procedure,)
        if table is MonthlyProcedureCount:
            return (MonthlyProcedureCount.procedure_code == self.procedure,)
        raise ValueError(f"{table.__name__} has no procedure")


@dataclass
class _Pieces:
    """Where one period's rows are: whole months (their first days) and runs of days."""

    months: list[date]
    days: list[tuple[date, date]]

    @property
    def single(self) -> date | None:
        """The one day or month that makes the period, when it is one."""
        if len(self.months) == 1 and not self.days:
            return self.months[0]
        if not self.months and len(self.days) == 1 and self.days[0][0] == self.days[0][1]:
            return self.days[0][0]
        return None


class _Extent:
    """The first and last day with rows in a source's daily table (read once, when needed)."""

    def __init__(self, session: Session, source: CountSource) -> None:
        self._session = session
        self._source = source
        self._bounds: tuple[date | None, date | None] | None = None

    def empty_outside(self, period: Period, month: date) -> bool:
        """Whether no day of `month` outside `period` has rows."""
        if self._bounds is None:
            table = self._source.daily
            low, high = self._session.execute(select(func.min(table.day), func.max(table.day))).one()
            self._bounds = (
                None if low is None else as_date(low),
                None if high is None else as_date(high),
            )
        first, last = self._bounds
        if first is None or last is None:
            return True
        before_empty = period.start <= month or first >= period.start
        after_empty = period.end >= month_end(month) or last <= period.end
        return before_empty and after_empty


def _pieces(period: Period, extent: _Extent) -> _Pieces:
    """Whole months from the monthly rows; a month covered in part too when the rest of it has
    no rows (the current month of a period ending yesterday); days for the rest. Periods of
    a week or less are read as days."""
    if period.n_days <= 7:
        return _Pieces([], [(period.start, period.end)])
    pieces = _Pieces([], [])
    month = month_start(period.start)
    while month <= period.end:
        last = month_end(month)
        low, high = max(month, period.start), min(last, period.end)
        whole = low == month and high == last
        if whole or ((high - low).days >= 7 and extent.empty_outside(period, month)):
            pieces.months.append(month)
        else:
            pieces.days.append((low, high))
        month = last + timedelta(days=1)
    return pieces


def grouped_counts(
    session: Session, source: CountSource, parts: Sequence[Period], *where: Filter
) -> Iterator[CountRow]:
    """The counts of `source` summed per period of `parts` (given by its index), agency, channel and
    metric, restricted by `where`."""
    extent = _Extent(session, source)
    for group in _disjoint_runs(parts):
        pieces = {index: _pieces(parts[index], extent) for index in group}
        singles = {index: p.single for index, p in pieces.items()}
        if all(single is not None for single in singles.values()):
            yield from _rows_as_they_are(session, source, singles, pieces, where)
        else:
            yield from _summed(session, source, pieces, where)


def _rows_as_they_are(
    session: Session,
    source: CountSource,
    singles: dict[int, date | None],
    pieces: dict[int, _Pieces],
    where: Sequence[Filter],
) -> Iterator[CountRow]:
    """Parts that are each one day or one month: their rows are already unique per agency,
    channel and metric, so they are read without grouping (grouping 10^5 day rows only cost the
    database a sort that spilled to disk)."""
    for table, is_month in ((source.daily, False), (source.monthly, True)):
        index_of = {
            single: index
            for index, single in singles.items()
            if single is not None and bool(pieces[index].months) == is_month
        }
        if not index_of:
            continue
        query = select(table.day, *_keys(table), *_values(table)).where(
            table.day >= min(index_of),
            table.day <= max(index_of),
            *source.where(table),
            *(f(table) for f in where),
        )
        for day, *rest in session.connection().execute(query).all():
            found = index_of.get(as_date(day))
            if found is not None:
                yield (found, *rest)


def _summed(
    session: Session, source: CountSource, pieces: dict[int, _Pieces], where: Sequence[Filter]
) -> Iterator[CountRow]:
    """Parts made of several months and days: month and day rows together, summed per part in
    the database."""
    alone = len(pieces) == 1
    selects: list[Select[Any]] = []
    months = {index: p.months for index, p in pieces.items() if p.months}
    if months:
        monthly = source.monthly
        if alone:
            part: ColumnElement[Any] = literal(next(iter(months)), Integer)
        else:
            part = case(*((monthly.day.in_(listed), index) for index, listed in months.items()), else_=-1)
        chosen = [month for listed in months.values() for month in listed]
        selects.append(_part_select(monthly, part, monthly.day.in_(chosen), source, where))
    days = [(low, high, index) for index, p in pieces.items() for low, high in p.days]
    if days:
        table = source.daily
        ranges = [and_(table.day >= low, table.day <= high) for low, high, _ in days]
        if alone:
            part = literal(days[0][2], Integer)
        else:
            part = case(*((r, index) for r, (_, _, index) in zip(ranges, days, strict=True)), else_=-1)
        selects.append(_part_select(table, part, or_(*ranges), source, where))
    rows = (selects[0] if len(selects) == 1 else union_all(*selects)).subquery()
    keys = (rows.c.part, rows.c.agency_id, rows.c.channel, rows.c.metric)
    query = select(*keys, *(func.sum(rows.c[name]) for name in _VALUE_NAMES)).group_by(*keys)
    for row in session.connection().execute(query).all():
        yield tuple(row)


_VALUE_NAMES = ("n", "k", "w", "wk", "w2")


def _keys(table: CountTable) -> tuple[Any, ...]:
    return (table.agency_id, table.channel, table.metric)


def _values(table: CountTable) -> tuple[Any, ...]:
    return (table.n, table.k, table.w, table.wk, table.w2)


def _part_select(
    table: CountTable,
    part: ColumnElement[Any],
    condition: ColumnElement[bool],
    source: CountSource,
    where: Sequence[Filter],
) -> Select[Any]:
    return select(part.label("part"), *_keys(table), *_values(table)).where(
        condition, *source.where(table), *(f(table) for f in where)
    )


def _disjoint_runs(parts: Sequence[Period]) -> list[list[int]]:
    """Indices of `parts` in groups whose periods do not overlap, so that a day belongs to at most
    one period of its group (parts that overlap, such as days and the week they make, go to
    different groups)."""
    groups: list[list[int]] = []
    ends: list[date] = []
    for index in sorted(range(len(parts)), key=lambda i: parts[i].start):
        for g, end in enumerate(ends):
            if end < parts[index].start:
                groups[g].append(index)
                ends[g] = parts[index].end
                break
        else:
            groups.append([index])
            ends.append(parts[index].end)
    return groups
