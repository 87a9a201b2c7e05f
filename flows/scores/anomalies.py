"""Anomaly flags per agency and local day, for supervisors to look at (sipas-method.md, Integrity).

Computed after a day's counts, over the same cases (those closed that local day), and replaced
as a whole each time the day is recomputed. A flag is a prompt to look, never a correction: the
figures are not changed by it. Kinds (thresholds in docs/scores.md, "Anomaly flags"):

- `fast_answers`: answers arriving within FAST_SECONDS of the survey's first message, more
  than a person reading an SMS can manage, in at least FAST_MIN_SURVEYS surveys and
  FAST_MIN_SHARE of the day's answered surveys;
- `identical_answers`: at least IDENTICAL_MIN_SURVEYS answered surveys with exactly the same
  answers that come from at most IDENTICAL_MAX_PHONES phones;
- `index_jump`: the day's SIPAS index interval and that of the JUMP_BASELINE_DAYS before it do
  not overlap (each unit with its roll-up, so a province's jump shows too);
- `repeat_phone`: answered surveys set aside because their phone already answered that agency
  this month (flows.scores.counts, "one phone counts once").
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import DateTime, String, cast, delete, func, insert, select, type_coerce
from sqlalchemy.orm import Session

from config.settings import Settings
from flows.scores.counts import ALL_CHANNELS, local_day_bounds, valid_answer
from flows.scores.formulas import round2
from flows.scores.periods import Period, day_period
from flows.scores.report import build_report
from storage.models import AnomalyFlag, Answer, Case, DailyCount, OutboundMessage, Survey, SurveyStatus

FAST_SECONDS = 10.0
FAST_MIN_SURVEYS = 3
FAST_MIN_SHARE = 0.2
IDENTICAL_MIN_SURVEYS = 5
IDENTICAL_MAX_PHONES = 2
JUMP_BASELINE_DAYS = 28


def detect_days(session: Session, start: date, end: date, settings: Settings) -> int:
    """Replace the anomaly flags of local days start..end; returns how many flags were stored."""
    session.execute(delete(AnomalyFlag).where(AnomalyFlag.day >= start, AnomalyFlag.day <= end))
    stored = 0
    day = start
    while day <= end:
        rows = [
            *_answer_flags(session, day, settings.tz),
            *_repeat_phone_flags(session, day),
            *_jump_flags(session, day, settings),
        ]
        if rows:
            session.execute(insert(AnomalyFlag), rows)
        stored += len(rows)
        day += timedelta(days=1)
    return stored


def _answer_flags(session: Session, day: date, tz: ZoneInfo) -> list[dict[str, Any]]:
    """fast_answers and identical_answers of the surveys of cases closed on `day`."""
    low, high = local_day_bounds(day, tz)
    closed = (Case.closed_at >= low, Case.closed_at < high)
    first_sent = (
        select(OutboundMessage.survey_id.label("survey_id"), func.min(OutboundMessage.sent_at).label("at"))
        .join(Survey, Survey.id == OutboundMessage.survey_id)
        .join(Case, Case.id == Survey.case_pk)
        .where(*closed, OutboundMessage.sent_at.is_not(None))
        .group_by(OutboundMessage.survey_id)
        .subquery()
    )
    phone_key = func.coalesce(Survey.phone_hash, Case.zalo_user_hash)
    # One row per answered survey: its valid answers as "code=value" and its first answer and
    # first sent message, read as plain datetimes (both aware on PostgreSQL, both naive UTC on
    # SQLite): only their difference is used, and 2 x 10^5 conversions cost a second a night.
    answered: Counter[int] = Counter()
    fast: Counter[int] = Counter()
    patterns: defaultdict[tuple[int, tuple[str, ...]], list[str | None]] = defaultdict(list)
    for agency_id, key, pattern, answered_at, sent in session.execute(
        select(
            Survey.agency_id,
            phone_key,
            func.aggregate_strings(Answer.criterion_code + "=" + cast(Answer.value, String), ","),
            type_coerce(func.min(Answer.answered_at), DateTime()),
            type_coerce(func.min(first_sent.c.at), DateTime()),
        )
        .join(Case, Case.id == Survey.case_pk)
        .join(Answer, Answer.survey_id == Survey.id)
        .outerjoin(first_sent, first_sent.c.survey_id == Survey.id)
        .where(*closed, Survey.status != SurveyStatus.OPTED_OUT, valid_answer())
        .group_by(Survey.id, Survey.agency_id, phone_key)
    ):
        answered[agency_id] += 1
        if sent is not None and (answered_at - sent).total_seconds() < FAST_SECONDS:
            fast[agency_id] += 1
        patterns[agency_id, tuple(sorted(str(pattern).split(",")))].append(key)

    rows: list[dict[str, Any]] = []
    for agency_id, count in sorted(fast.items()):
        share = count / answered[agency_id]
        if count >= FAST_MIN_SURVEYS and share >= FAST_MIN_SHARE:
            detail = {"surveys": count, "answered": answered[agency_id], "seconds": FAST_SECONDS}
            rows.append(_flag(agency_id, day, "fast_answers", detail))
    identical: dict[int, dict[str, Any]] = {}
    for (agency_id, same_answers), phones in sorted(patterns.items()):
        distinct = len(set(phones))
        if len(phones) >= IDENTICAL_MIN_SURVEYS and distinct <= IDENTICAL_MAX_PHONES:
            worst = identical.get(agency_id)
            if worst is None or len(phones) > worst["surveys"]:
                answers_text = ", ".join(same_answers)
                identical[agency_id] = {"surveys": len(phones), "phones": distinct, "answers": answers_text}
    rows.extend(_flag(agency_id, day, "identical_answers", detail) for agency_id, detail in identical.items())
    return rows


def _repeat_phone_flags(session: Session, day: date) -> list[dict[str, Any]]:
    return [
        _flag(agency_id, day, "repeat_phone", {"surveys": n})
        for agency_id, n in session.execute(
            select(DailyCount.agency_id, DailyCount.n).where(
                DailyCount.day == day,
                DailyCount.channel == ALL_CHANNELS,
                DailyCount.metric == "surveys_repeat_phone",
                DailyCount.n > 0,
            )
        )
    ]


def _jump_flags(session: Session, day: date, settings: Settings) -> list[dict[str, Any]]:
    today = build_report(session, day_period(day), settings=settings)
    if not today.rows:
        return []
    baseline_period = Period(
        f"{day - timedelta(days=JUMP_BASELINE_DAYS)}..{day - timedelta(days=1)}",
        day - timedelta(days=JUMP_BASELINE_DAYS),
        day - timedelta(days=1),
    )
    baseline = {row.unit.id: row for row in build_report(session, baseline_period, settings=settings).rows}
    rows: list[dict[str, Any]] = []
    for row in today.rows:
        before = baseline.get(row.unit.id)
        now_ci = row.figures.sipas.ci95
        if before is None or now_ci is None or (before_ci := before.figures.sipas.ci95) is None:
            continue
        if now_ci[0] > before_ci[1] or now_ci[1] < before_ci[0]:
            detail = {
                "index": round2(row.figures.sipas_index),
                "ci95": [round2(now_ci[0]), round2(now_ci[1])],
                "baseline": round2(before.figures.sipas_index),
                "baseline_ci95": [round2(before_ci[0]), round2(before_ci[1])],
                "direction": "up" if now_ci[0] > before_ci[1] else "down",
            }
            rows.append(_flag(row.unit.id, day, "index_jump", detail))
    return rows


def _flag(agency_id: int, day: date, kind: str, detail: dict[str, Any]) -> dict[str, Any]:
    return {"agency_id": agency_id, "day": day, "kind": kind, "detail": detail}
