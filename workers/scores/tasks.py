"""RQ jobs that (re)compute daily counts. Plain arguments only; both are idempotent.

The nightly job recomputes several past days, not just yesterday: counts are attributed to
the day a case closed, and its survey can still be answered days later (first message held
to the sending window, then SIPAS_SURVEY_TTL until it expires).
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from typing import Any

import structlog

from config.settings import Settings
from flows.rules import answer_reach
from flows.scores.anomalies import detect_days
from flows.scores.counts import compute_days, roll_up_missing
from flows.scores.periods import yesterday
from workers.digest.send import send_nightly_digests
from workers.queues import SCORES_QUEUE, queue
from workers.runtime import get_runtime

log = structlog.get_logger(__name__)

MIN_NIGHTLY_DAYS = 4
_DAY = 24 * 3600


def compute_scores(start_iso: str, end_iso: str) -> dict[str, Any]:
    """Recompute the local days start..end (ISO dates, inclusive) in one transaction."""
    runtime = get_runtime()
    start, end = date.fromisoformat(start_iso), date.fromisoformat(end_iso)
    with runtime.sessions() as session, session.begin():
        summary = compute_days(session, start, end, runtime.settings.tz)
        flags = detect_days(session, start, end, runtime.settings)
    log.info("scores_computed", **summary.as_dict(), anomaly_flags=flags)
    return {**summary.as_dict(), "anomaly_flags": flags}


def nightly_scores(now_iso: str | None = None) -> dict[str, Any]:
    """The cron job (01:00 local): recompute the last `nightly_lookback_days` complete local days,
    then queue the supervisors' digests of yesterday (workers.digest.send). The first night after
    the upgrade that added the units' trend points also rolls up every day counted before.

    `now_iso` (an ISO datetime with offset) exists so a run can be replayed for a given night.
    """
    runtime = get_runtime()
    now = datetime.fromisoformat(now_iso) if now_iso else None
    end = yesterday(runtime.settings.tz, now)
    with runtime.sessions() as session:  # units' own rules may let answers come later (flows.rules)
        reach = answer_reach(session, runtime.settings)
    days = max(nightly_lookback_days(runtime.settings), 1 + math.ceil(reach.total_seconds() / _DAY))
    start = end - timedelta(days=days - 1)
    with runtime.sessions() as session, session.begin():
        rolled = roll_up_missing(session)
    if rolled is not None:
        log.info("scores_rolled_up", start=rolled[0].isoformat(), end=rolled[1].isoformat())
    summary = compute_scores(start.isoformat(), end.isoformat())
    queue(runtime.redis, SCORES_QUEUE).enqueue(
        send_nightly_digests, end.isoformat(), 1, job_id=f"digest-{end}-1"
    )
    return summary


def nightly_lookback_days(settings: Settings) -> int:
    """How many past days can still receive answers, so the nightly job must redo them.

    The last answer to a case closed just before midnight of day X comes at most
    first-message delay + the night the sending window is closed + SIPAS_SURVEY_TTL later.
    Redoing X..X+L-1 each night with L = 1 + ceil(that / 1 day) catches it; with the
    defaults (0 s, 10.5 h closed, 72 h) L = 5, with an all-day window L = 4.
    """
    opens, closes = settings.send_window
    open_seconds = (closes.hour * 3600 + closes.minute * 60 if closes else _DAY) - (
        opens.hour * 3600 + opens.minute * 60
    )
    latest = settings.SIPAS_FIRST_MESSAGE_DELAY + (_DAY - open_seconds) + settings.SIPAS_SURVEY_TTL
    return max(MIN_NIGHTLY_DAYS, 1 + math.ceil(latest / _DAY))
