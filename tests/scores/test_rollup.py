"""The fast path of reports and trends against the full computation, on random data, both databases.

Random cases, surveys and answers over three months are counted by the nightly computation
(compute_days, which also writes the monthly rows and the units' trend points); part of a month is
then recounted after more answers came, as the nightly job does. Checked:
- every monthly row is the sum of its days' rows, for the totals and per procedure;
- the sums a report reads for any period (months from the monthly rows, edge days from the daily
  rows) equal the period's daily rows summed one by one, the full computation;
- every trend point (stored points for days and whole months, counts for other periods) equals
  the figures build_report gives for that unit and period;
- the trend points and months come back equal when they were missing (the first night after
  the upgrade that added them).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from config.settings import Settings
from flows.scores.counts import compute_days, roll_up_missing
from flows.scores.periods import Period, day_period, parse_period
from flows.scores.report import build_report
from flows.scores.sums import CountSource, grouped_counts
from flows.scores.trend import unit_trends
from storage.db import session_factory
from storage.models import (
    AgencyLevel,
    Channel,
    DailyCount,
    DailyProcedureCount,
    MonthlyCount,
    MonthlyProcedureCount,
    OnTime,
    Survey,
    UnitPoint,
)
from tests.scores.factories import add_answer, make_agency, make_case, surveyed_case
from tests.scores.test_counts_db import TZ

FIRST, LAST = date(2026, 9, 24), date(2026, 11, 26)
PROCEDURES = ("1.001612", "1.001193")
CRITERIA = ("overall", "tiep_can", "thu_tuc", "cong_chuc", "cong_chuc.lich_su", "ket_qua", "phan_anh")
Key = tuple[Any, ...]


def _seed(url: str, rng: random.Random) -> dict[str, int]:
    """A province with a district of two wards, a department and a ward of its own; random cases
    every day; returns the units' ids by code."""
    with session_factory(url)() as s, s.begin():
        p = make_agency(s, "P", level=AgencyLevel.PROVINCE)
        d = make_agency(s, "D", level=AgencyLevel.DISTRICT, parent=p)
        units = [
            make_agency(s, "W1", parent=d),
            make_agency(s, "W2", parent=d),
            make_agency(s, "S", level=AgencyLevel.DEPARTMENT, parent=p),
            make_agency(s, "W3", parent=p),
        ]
        day = FIRST
        while day <= LAST:
            for unit in units:
                for _ in range(rng.randint(0, 3)):
                    _random_case(s, unit, day, rng)
            day += timedelta(days=1)
        ids = {a.code: a.id for a in (p, d, *units)}
    with session_factory(url)() as s, s.begin():
        compute_days(s, FIRST, LAST, TZ)
    return ids


def _random_case(s: Session, unit: Any, day: date, rng: random.Random) -> None:
    closed = datetime.combine(day, time(rng.randint(7, 20), rng.randint(0, 59)), TZ).astimezone(UTC)
    procedure = rng.choice(PROCEDURES)
    on_time = rng.choice([OnTime.EARLY, OnTime.ON_TIME, OnTime.LATE, None])
    if rng.random() < 0.3:
        make_case(s, unit, closed, on_time=on_time, outcome="not_sampled", procedure=procedure)
        return
    answers = {c: rng.randint(1, 5) for c in CRITERIA if rng.random() < 0.7}
    if rng.random() < 0.3:
        answers["integrity.ho_so"] = rng.choice([1, 2])
    case = surveyed_case(
        s,
        unit,
        closed,
        answers,
        on_time=on_time,
        channel=rng.choice([Channel.SMS, Channel.SMS, Channel.ZALO]),
        procedure=procedure,
    )
    survey = s.scalars(select(Survey).where(Survey.case_pk == case.id)).one()
    survey.inclusion_probability = rng.choice([1.0, 0.5, 0.25])


def _late_answers_recounted(url: str, rng: random.Random) -> None:
    """Answers arriving late for cases of a few days, then those days counted again (part of a
    month, as the nightly job's look-back does)."""
    with session_factory(url)() as s, s.begin():
        surveys = s.scalars(select(Survey).order_by(Survey.id)).all()
        for survey in rng.sample(list(surveys), 20):
            add_answer(s, survey, "thu_tuc.thoi_gian", rng.randint(1, 5))
    with session_factory(url)() as s, s.begin():
        compute_days(s, date(2026, 10, 28), date(2026, 11, 3), TZ)


def _rows(s: Session, table: Any) -> list[tuple[Any, ...]]:
    procedure = (table.procedure_code,) if hasattr(table, "procedure_code") else ()
    query = select(*procedure, table.agency_id, table.day, table.channel, table.metric, table.n, table.k,
                   table.w, table.wk, table.w2)  # fmt: skip
    return [tuple(row) for row in s.execute(query)]


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _summed(rows: Iterable[tuple[Any, ...]], key_of: Any) -> dict[Key, list[float]]:
    sums: defaultdict[Key, list[float]] = defaultdict(lambda: [0, 0, 0.0, 0.0, 0.0])
    for row in rows:
        key = key_of(row)
        if key is None:
            continue
        for i, value in enumerate(row[-5:]):
            sums[key][i] += value
    return dict(sums)


def _same(found: dict[Key, list[float]], expected: dict[Key, list[float]]) -> None:
    assert found.keys() == expected.keys()
    for key, values in expected.items():
        assert found[key] == pytest.approx(values, rel=1e-12, abs=1e-9), key


@pytest.fixture
def seeded(any_db_url: str) -> tuple[str, dict[str, int]]:
    rng = random.Random(8)
    ids = _seed(any_db_url, rng)
    _late_answers_recounted(any_db_url, rng)
    return any_db_url, ids


def test_monthly_rows_are_their_days_summed(seeded: tuple[str, dict[str, int]]) -> None:
    url, _ = seeded
    with session_factory(url)() as s:
        for daily, monthly in ((DailyCount, MonthlyCount), (DailyProcedureCount, MonthlyProcedureCount)):
            days = _rows(s, daily)
            months = _rows(s, monthly)
            assert len(months) > 100
            width = len(days[0]) - 9  # 1 with a procedure column

            def month_key(row: tuple[Any, ...], width: int = width) -> Key:
                day = _as_date(row[width + 1])
                return (*row[: width + 1], day.replace(day=1), *row[width + 2 : width + 4])

            def own_key(row: tuple[Any, ...], width: int = width) -> Key:
                return (*row[: width + 1], _as_date(row[width + 1]), *row[width + 2 : width + 4])

            _same(_summed(months, own_key), _summed(days, month_key))


def _random_periods(rng: random.Random, n: int) -> list[Period]:
    periods = [
        parse_period("2026-Q4"),
        parse_period("2026-10"),
        parse_period("2026"),
        parse_period("2026-W44"),
        parse_period(f"{LAST - timedelta(days=364)}..{LAST}"),  # the year to the last counted day
        parse_period(f"{date(2026, 11, 1)}..{LAST}"),  # this month so far
    ]
    for _ in range(n):
        start = FIRST + timedelta(days=rng.randint(-5, 60))
        end = start + timedelta(days=rng.randint(0, 50))
        periods.append(parse_period(f"{start}..{end}"))
    return periods


@pytest.mark.parametrize("procedure", [None, PROCEDURES[1]])
def test_period_sums_equal_the_days_summed(seeded: tuple[str, dict[str, int]], procedure: str | None) -> None:
    url, _ = seeded
    rng = random.Random(3)
    periods = _random_periods(rng, 12)
    with session_factory(url)() as s:
        daily = DailyCount if procedure is None else DailyProcedureCount
        days = [row[-9:] for row in _rows(s, daily) if procedure is None or row[0] == procedure]
        for period in periods:

            def in_period(row: tuple[Any, ...], period: Period = period) -> Key | None:
                agency, day, channel, metric = row[:4]
                if not period.start <= _as_date(day) <= period.end:
                    return None
                return (agency, channel, metric)

            expected = _summed(days, in_period)
            found = _summed(
                (row[1:] for row in grouped_counts(s, CountSource(procedure), [period])),
                lambda row: tuple(row[:3]),
            )
            _same(found, expected)
        # several periods at once (a trend): each part as if read alone
        parts = [day_period(LAST - timedelta(days=i)) for i in range(10)] + periods[:4]
        together = defaultdict(list)
        for index, *rest in grouped_counts(s, CountSource(procedure), parts):
            together[index].append(tuple(rest))
        for index, part in enumerate(parts):
            alone = [tuple(row[1:]) for row in grouped_counts(s, CountSource(procedure), [part])]
            _same(_summed(together[index], lambda r: r[:3]), _summed(alone, lambda r: r[:3]))


@pytest.mark.parametrize("channel", ["all", "sms", "zalo"])
def test_trend_points_equal_the_report(
    settings: Settings,  # before `seeded`: its database fixture empties the PostgreSQL database
    seeded: tuple[str, dict[str, int]],
    channel: str,
) -> None:
    url, ids = seeded
    rng = random.Random(5)
    days = [day_period(FIRST + timedelta(days=rng.randint(0, 62))) for _ in range(6)]
    months = [parse_period(m) for m in ("2026-09", "2026-10", "2026-11")]
    parts = [*days, *months, *_random_periods(rng, 3)]
    compared = 0
    with session_factory(url)() as s:
        for procedure in (None, PROCEDURES[0]):
            for root in ("P", "D"):
                trends = unit_trends(s, ids[root], parts, channel, procedure)
                for part, points in zip(parts, trends, strict=True):
                    report = build_report(
                        s, part, root, settings=settings, channel=channel, procedure=procedure
                    )
                    for row in report.rows:
                        point = points[row.unit.id]
                        figures = row.figures
                        assert point.cases == figures.n_cases_closed, (root, part.label, row.unit.code)
                        assert point.sipas.value == pytest.approx(figures.sipas_index)
                        assert point.sipas.ci95 == pytest.approx(figures.sipas.ci95)
                        assert point.overall.value == pytest.approx(figures.overall_satisfaction)
                        assert point.overall.n == figures.n_overall
                        compared += point.sipas.value is not None
    assert compared > 100


def test_missing_points_and_months_are_rolled_up_again(seeded: tuple[str, dict[str, int]]) -> None:
    url, _ = seeded

    def stored(s: Session) -> tuple[list[tuple[Any, ...]], ...]:
        keys = (UnitPoint.procedure_code, UnitPoint.span, UnitPoint.day, UnitPoint.agency_id)
        values = (UnitPoint.channel, UnitPoint.cases, UnitPoint.sipas, UnitPoint.overall_n)
        points = sorted(tuple(row) for row in s.execute(select(*keys, *values)))
        return points, sorted(_rows(s, MonthlyCount)), sorted(_rows(s, MonthlyProcedureCount))

    with session_factory(url)() as s:
        before = stored(s)
    assert len(before[0]) > 500
    with session_factory(url)() as s, s.begin():
        assert roll_up_missing(s) is None  # nothing missing: nothing done
        for table in (UnitPoint, MonthlyCount, MonthlyProcedureCount):
            s.execute(delete(table))
    with session_factory(url)() as s, s.begin():
        assert roll_up_missing(s) == (FIRST, LAST)
    with session_factory(url)() as s:
        after = stored(s)
    assert [(r[:6], r[7]) for r in after[0]] == [(r[:6], r[7]) for r in before[0]]
    assert [r[6] or -1.0 for r in after[0]] == pytest.approx([r[6] or -1.0 for r in before[0]], rel=1e-12)
    for found, expected in zip(after[1:], before[1:], strict=True):
        _same(_summed(found, lambda r: r[:-5]), _summed(expected, lambda r: r[:-5]))
