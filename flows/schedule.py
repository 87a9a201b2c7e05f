"""When a survey message may go out: the citizen's quiet hours are respected (local time)."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

__all__ = ["in_send_window", "next_send_time"]


def in_send_window(at: datetime, window: tuple[time, time | None], tz: ZoneInfo) -> bool:
    """True when `at` falls inside [start, end) local time; end None means until midnight."""
    start, end = window
    local = at.astimezone(tz).timetz().replace(tzinfo=None)
    return start <= local and (end is None or local < end)


def next_send_time(at: datetime, window: tuple[time, time | None], tz: ZoneInfo) -> datetime:
    """`at` itself when inside the window, else the next local window opening (returned in UTC-aware
    form of the same instant type as `at`). Evening cases are asked the next morning, not at night."""
    if in_send_window(at, window, tz):
        return at
    start, _end = window
    local = at.astimezone(tz)
    opening = local.replace(hour=start.hour, minute=start.minute, second=0, microsecond=0)
    if opening <= local:
        opening = (local + timedelta(days=1)).replace(
            hour=start.hour, minute=start.minute, second=0, microsecond=0
        )
    return opening.astimezone(at.tzinfo)
