"""What a supervisor's digest says about their unit for one local day, gathered from flows.scores.

Three windows end on the day: the day itself, the last 7 days and the month so far. Each is
compared with the window before it (the previous day, the 7 days before, the same days of the
previous month); a change is called out only when the two 95 % intervals do not overlap, so
noise is never reported as news. Child units are compared over the last 7 days, with rank ranges.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy.orm import Session

from config.settings import Settings
from flows.scores.comments import CitizenComment, load_comments
from flows.scores.periods import Period, day_period
from flows.scores.report import build_report

MAX_COMMENTS = 5
WORST_CRITERIA = 2
CHART_DAYS = 30


@dataclass(frozen=True)
class Window:
    """One window's headline figures for the unit, and how they moved against the one before."""

    label: str
    period: Period
    row: Mapping[str, Any]  # the unit's `scores show --format json` object
    previous: Mapping[str, Any] | None
    change: float | None  # sipas_index now − before (percentage points)
    significant: bool  # the two intervals do not overlap


@dataclass(frozen=True)
class DigestContent:
    day: date
    agency_code: str
    agency_name: str
    windows: Sequence[Window]
    children: Sequence[Mapping[str, Any]]  # child units over the last 7 days, best first
    worst_criteria: Sequence[tuple[str, Mapping[str, Any]]]
    funnel: Mapping[str, Mapping[str, int]]  # the day's, per channel
    anomalies: Sequence[tuple[str, str, Mapping[str, Any]]]  # (unit code, unit name, flag), the day's
    comments: Sequence[CitizenComment]
    trend: Sequence[tuple[date, float | None, tuple[float, float] | None]]  # the last CHART_DAYS days

    @property
    def best(self) -> Mapping[str, Any] | None:
        ranked = [c for c in self.children if c["rank_range"] is not None]
        return ranked[0] if ranked else None

    @property
    def worst(self) -> Mapping[str, Any] | None:
        ranked = [c for c in self.children if c["rank_range"] is not None]
        return ranked[-1] if len(ranked) > 1 else None


def windows_for(day: date) -> list[tuple[str, Period, Period]]:
    """(label, window, the window it is compared with) for the day, its week and its month."""
    week = Period(f"{day - timedelta(days=6)}..{day}", day - timedelta(days=6), day)
    before_week = Period(
        f"{day - timedelta(days=13)}..{day - timedelta(days=7)}",
        day - timedelta(days=13),
        day - timedelta(days=7),
    )
    month_start = day.replace(day=1)
    last_month_end = month_start - timedelta(days=1)
    last_month_start = last_month_end.replace(day=1)
    same_days_end = min(last_month_start + timedelta(days=day.day - 1), last_month_end)
    month = Period(f"{month_start}..{day}", month_start, day)
    before_month = Period(f"{last_month_start}..{same_days_end}", last_month_start, same_days_end)
    return [
        ("Hôm qua", day_period(day), day_period(day - timedelta(days=1))),
        ("7 ngày qua", week, before_week),
        ("Từ đầu tháng", month, before_month),
    ]


def _unit_row(session: Session, period: Period, code: str, settings: Settings) -> dict[str, Any]:
    return build_report(session, period, code, settings=settings).as_json()[0]


def _disjoint(a: Sequence[float] | None, b: Sequence[float] | None) -> bool:
    return a is not None and b is not None and (a[0] > b[1] or a[1] < b[0])


def gather(session: Session, day: date, agency_code: str, settings: Settings) -> DigestContent:
    """Everything the digest of `agency_code` for `day` shows (raises UnknownAgencyError)."""
    windows: list[Window] = []
    for label, period, before in windows_for(day):
        row = _unit_row(session, period, agency_code, settings)
        previous = _unit_row(session, before, agency_code, settings)
        now_index, before_index = row["sipas_index"], previous["sipas_index"]
        change = None if now_index is None or before_index is None else now_index - before_index
        significant = _disjoint(row["sipas_ci95"], previous["sipas_ci95"])
        windows.append(Window(label, period, row, previous, change, significant))

    week_rows = build_report(session, windows[1].period, agency_code, settings=settings).as_json()
    unit = week_rows[0]
    children = sorted(
        (r for r in week_rows if r["parent_code"] == agency_code),
        key=lambda r: (r["rank_range"] is None, -(r["sipas_index"] or 0.0), r["agency_code"]),
    )
    criteria = [
        (code, cell)
        for code, cell in unit["criteria"].items()
        if cell["index"] is not None and code != "overall"
    ]
    worst = sorted(criteria, key=lambda item: (item[1]["index"], item[0]))[:WORST_CRITERIA]

    day_rows = build_report(session, day_period(day), agency_code, settings=settings).as_json()
    anomalies = [(r["agency_code"], r["agency_name"], flag) for r in day_rows for flag in r["anomalies"]]
    comments = list(load_comments(session, day_period(day), settings.tz, agency_code))[-MAX_COMMENTS:]

    trend: list[tuple[date, float | None, tuple[float, float] | None]] = []
    for offset in range(CHART_DAYS - 1, -1, -1):
        current = day - timedelta(days=offset)
        row = _unit_row(session, day_period(current), agency_code, settings)
        ci = row["sipas_ci95"]
        trend.append((current, row["sipas_index"], None if ci is None else (ci[0], ci[1])))

    return DigestContent(
        day=day,
        agency_code=agency_code,
        agency_name=unit["agency_name"],
        windows=windows,
        children=children,
        worst_criteria=worst,
        funnel=windows[0].row["funnel"],
        anomalies=anomalies,
        comments=comments,
        trend=trend,
    )
