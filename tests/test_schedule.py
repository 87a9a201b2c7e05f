"""Quiet hours: survey messages go out only inside the local send window."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from config.settings import Settings
from flows.schedule import in_send_window, next_send_time

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
WINDOW = (time(7, 30), time(21, 0))


@pytest.mark.parametrize(
    ("utc", "expected_utc"),
    [
        # 10:00 local → now
        (datetime(2026, 11, 20, 3, 0, tzinfo=UTC), datetime(2026, 11, 20, 3, 0, tzinfo=UTC)),
        # 07:29 local → 07:30 local the same day (00:30 UTC)
        (datetime(2026, 11, 20, 0, 29, tzinfo=UTC), datetime(2026, 11, 20, 0, 30, tzinfo=UTC)),
        # 21:00 local exactly is outside → 07:30 next day
        (datetime(2026, 11, 20, 14, 0, tzinfo=UTC), datetime(2026, 11, 21, 0, 30, tzinfo=UTC)),
        # 23:50 local → next morning
        (datetime(2026, 11, 20, 16, 50, tzinfo=UTC), datetime(2026, 11, 21, 0, 30, tzinfo=UTC)),
        # 02:00 local (19:00 UTC the day before) → 07:30 the same local day
        (datetime(2026, 11, 19, 19, 0, tzinfo=UTC), datetime(2026, 11, 20, 0, 30, tzinfo=UTC)),
    ],
)
def test_next_send_time(utc: datetime, expected_utc: datetime) -> None:
    assert next_send_time(utc, WINDOW, HCM) == expected_utc


def test_window_open_all_day() -> None:
    window = Settings(_env_file=None, SIPAS_SEND_WINDOW="00:00-24:00").send_window  # type: ignore[call-arg]
    assert window == (time(0, 0), None)
    late = datetime(2026, 11, 20, 16, 59, 59, tzinfo=UTC)  # 23:59:59 local
    assert in_send_window(late, window, HCM)
    assert next_send_time(late, window, HCM) == late


@pytest.mark.parametrize("bad", ["7:30-21:00", "21:00-07:30", "07:30-25:00", "07:61-21:00", "x"])
def test_bad_windows_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="SIPAS_SEND_WINDOW"):
        Settings(_env_file=None, SIPAS_SEND_WINDOW=bad)  # type: ignore[call-arg]
