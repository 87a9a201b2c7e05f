"""Report periods: every accepted form, and clear errors for the rest."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from flows.scores.periods import PeriodError, parse_period, yesterday


@pytest.mark.parametrize(
    ("text", "label", "start", "end"),
    [
        ("2026-11-20", "2026-11-20", date(2026, 11, 20), date(2026, 11, 20)),
        # 2026-01-01 is a Thursday, so ISO week 1 starts 2025-12-29; week 47 starts 46 weeks later
        ("2026-W47", "2026-W47", date(2026, 11, 16), date(2026, 11, 22)),
        ("2026-w01", "2026-W01", date(2025, 12, 29), date(2026, 1, 4)),
        ("2026-W53", "2026-W53", date(2026, 12, 28), date(2027, 1, 3)),
        ("2026-11", "2026-11", date(2026, 11, 1), date(2026, 11, 30)),
        ("2028-02", "2028-02", date(2028, 2, 1), date(2028, 2, 29)),
        ("2026-12", "2026-12", date(2026, 12, 1), date(2026, 12, 31)),
        ("2026-Q4", "2026-Q4", date(2026, 10, 1), date(2026, 12, 31)),
        ("2026-q1", "2026-Q1", date(2026, 1, 1), date(2026, 3, 31)),
        ("2026", "2026", date(2026, 1, 1), date(2026, 12, 31)),
        (" 2026-11-01..2026-11-20 ", "2026-11-01..2026-11-20", date(2026, 11, 1), date(2026, 11, 20)),
        ("2026-W46..2026-W47", "2026-W46..2026-W47", date(2026, 11, 9), date(2026, 11, 22)),
        ("2026-11-20..2026-11-20", "2026-11-20..2026-11-20", date(2026, 11, 20), date(2026, 11, 20)),
    ],
)
def test_accepted_forms(text: str, label: str, start: date, end: date) -> None:
    period = parse_period(text)
    assert (period.label, period.start, period.end) == (label, start, end)
    days = list(period.days())
    assert (days[0], days[-1], len(days)) == (start, end, period.n_days)
    assert period.n_days == (end - start).days + 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("yesterday", "not understood"),
        ("", "not understood"),
        ("2026-13", "not a real date"),
        ("2026-02-30", "not a real date"),
        ("2025-W53", "not a real date"),  # 2025 has 52 ISO weeks
        ("2026-W00", "not a real date"),
        ("2026-Q5", "Q1 to Q4"),
        ("2026-Q0", "Q1 to Q4"),
        ("2026-11-20..2026-11-01", "comes before"),
        ("..2026-11-01", "both ends"),
        ("2026-11-01..", "both ends"),
        ("2026-11-01..2026-11-05..2026-11-09", "both ends"),
        ("20261120", "not understood"),
    ],
)
def test_rejected_forms_say_why(text: str, message: str) -> None:
    with pytest.raises(PeriodError, match=message):
        parse_period(text)


def test_yesterday_is_local() -> None:
    tz = ZoneInfo("Asia/Ho_Chi_Minh")
    # 2026-11-20 18:30 UTC is already 2026-11-21 01:30 in Hà Nội: yesterday there is the 20th
    assert yesterday(tz, datetime(2026, 11, 20, 18, 30, tzinfo=UTC)) == date(2026, 11, 20)
    assert yesterday(tz, datetime(2026, 11, 20, 16, 59, tzinfo=UTC)) == date(2026, 11, 19)
