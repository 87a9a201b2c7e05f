"""When a survey message may go out: the citizen's quiet hours are respected (local time), and
nothing goes out on an agency's holidays (flows.rules resolves both per agency)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

__all__ = ["in_send_window", "next_send_time"]


def in_send_window(
    at: datetime, window: tuple[time, time | None], tz: ZoneInfo, holidays: Collection[date] = ()
) -> bool:
    """True when `at` falls inside [start, end) local time on a day that is not a holiday; end
    None means until midnight."""
    start, end = window
    local = at.astimezone(tz)
    if local.date() in holidays:
        return False
    clock = local.timetz().replace(tzinfo=None)
    return start <= clock and (end is None or clock < end)


def next_send_time(
    at: datetime, window: tuple[time, time | None], tz: ZoneInfo, holidays: Collection[date] = ()
) -> datetime:
    """`at` itself when inside the window, else the next local window opening on a day that is not
    a holiday (returned in UTC-aware form of the same instant type as `at`). Evening cases are
    asked the next morning, not at night; a case closed on a holiday the next working morning."""
    if in_send_window(at, window, tz, holidays):
        return at
    start, _end = window
    local = at.astimezone(tz)
    opening = local.replace(hour=start.hour, minute=start.minute, second=0, microsecond=0)
    if opening <= local:
        opening = (local + timedelta(days=1)).replace(
            hour=start.hour, minute=start.minute, second=0, microsecond=0
        )
    # A list of holidays is finite (and checked to be so), so this loop ends.
    while opening.date() in holidays:
        opening = (opening + timedelta(days=1)).replace(
            hour=start.hour, minute=start.minute, second=0, microsecond=0
        )
    return opening.astimezone(at.tzinfo)
