"""Report periods as supervisors write them: a day, ISO week, month, quarter, year, or a range.

Days are local days (SIPAS_TIMEZONE); a period is an inclusive range of them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

__all__ = ["Period", "PeriodError", "day_period", "parse_period", "yesterday"]

_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$", re.IGNORECASE)
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_QUARTER = re.compile(r"^(\d{4})-Q(\d)$", re.IGNORECASE)
_YEAR = re.compile(r"^(\d{4})$")
_RANGE = ".."

FORMS = "YYYY-MM-DD, YYYY-Www, YYYY-MM, YYYY-Qn, YYYY or FROM..TO (e.g. 2026-11-01..2026-11-20)"


class PeriodError(ValueError):
    """A period the parser cannot read; the message says which forms are accepted."""


@dataclass(frozen=True)
class Period:
    label: str
    start: date
    end: date  # inclusive

    def days(self) -> Iterator[date]:
        day = self.start
        while day <= self.end:
            yield day
            day += timedelta(days=1)

    @property
    def n_days(self) -> int:
        return (self.end - self.start).days + 1


def day_period(day: date) -> Period:
    return Period(day.isoformat(), day, day)


def yesterday(tz: ZoneInfo, now: datetime | None = None) -> date:
    """The last complete local day: the default of `scores compute` and `scores show`."""
    current = now if now is not None else datetime.now(tz)
    return current.astimezone(tz).date() - timedelta(days=1)


def parse_period(text: str) -> Period:
    """Read one period; raises PeriodError with a clear message on anything else."""
    cleaned = text.strip()
    if _RANGE in cleaned:
        first, _, last = cleaned.partition(_RANGE)
        if not first.strip() or not last.strip() or _RANGE in last:
            raise PeriodError(f"period {text!r}: a range is FROM..TO with both ends given")
        start, end = _single(first.strip()), _single(last.strip())
        if end.end < start.start:
            raise PeriodError(f"period {text!r}: {end.label} comes before {start.label}")
        return Period(f"{start.label}..{end.label}", start.start, end.end)
    return _single(cleaned)


def _single(text: str) -> Period:
    try:
        return _parse_single(text)
    except PeriodError:
        raise
    except ValueError as exc:  # an impossible date such as 2026-02-30 or 2026-W60
        raise PeriodError(f"period {text!r} is not a real date: {exc}") from exc


def _parse_single(text: str) -> Period:
    if match := _DAY.match(text):
        day = date(*(int(g) for g in match.groups()))
        return day_period(day)
    if match := _WEEK.match(text):
        year, week = int(match[1]), int(match[2])
        start = date.fromisocalendar(year, week, 1)
        return Period(f"{year:04d}-W{week:02d}", start, start + timedelta(days=6))
    if match := _MONTH.match(text):
        year, month = int(match[1]), int(match[2])
        start = date(year, month, 1)
        following = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
        return Period(f"{year:04d}-{month:02d}", start, following - timedelta(days=1))
    if match := _QUARTER.match(text):
        year, quarter = int(match[1]), int(match[2])
        if not 1 <= quarter <= 4:
            raise PeriodError(f"period {text!r}: a quarter is Q1 to Q4")
        start = date(year, 3 * quarter - 2, 1)
        following = date(year + 1, 1, 1) if quarter == 4 else date(year, 3 * quarter + 1, 1)
        return Period(f"{year:04d}-Q{quarter}", start, following - timedelta(days=1))
    if match := _YEAR.match(text):
        year = int(match[1])
        return Period(f"{year:04d}", date(year, 1, 1), date(year, 12, 31))
    raise PeriodError(f"period {text!r} not understood; use {FORMS}")
