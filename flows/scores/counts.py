"""Daily counts: per agency, local day and channel, the numbers every score is computed from.

Everything about a case is attributed to the local day (SIPAS_TIMEZONE) on which the case
closed: its timing, its survey, the survey's messages and answers, even when the answers
arrive days later. Recomputing a day therefore picks up late answers, and a day's figures
never move from one day to another.

Rows (storage.models.DailyCount):
- channel "sms" / "zalo": survey-based metrics of surveys on that channel;
- channel "all": the same over every channel, plus the case-level counters. A case that was
  not sampled has no survey and so no channel: case counters exist only under "all".
- metric = a criterion code (n valid answers, k satisfied, or k "yes" for `integrity.*`), or
  a counter of COUNTERS (n only). Counters that are zero are not written: absent means 0.

Answers of surveys with status opted_out count nowhere (the survey still counts as sent and
delivered, not as responded).

Design weights: each answer weighs w = 1/p, p its survey's inclusion probability; criterion rows
carry Σw, Σw over the satisfied answers and Σw² besides n and k (docs/scores.md, "Weights").

One phone counts once: within a calendar month, the answers of a phone (or Zalo user) about one
agency count once, from the first of its surveys that has answers (by closing time); its later
answered surveys that month still count in the response funnel but their answers are set aside
and counted as `surveys_repeat_phone`. The calendar month is the window because a day's counts
must not depend on days after it (docs/scores.md, "One phone counts once").

Procedures: the same rows are also written per procedure of the cases (DailyProcedureCount), each
from the cases of that procedure alone, with every rule above applied as for the totals (a repeat
phone is a repeat whatever the procedure of its first case), so for every key the rows of all
procedures add up to the total row. The procedures seen are named in `procedures` (_name_procedures).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Date,
    Select,
    String,
    Subquery,
    and_,
    case,
    delete,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
    text,
    type_coerce,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from flows.scores.formulas import (
    ELEMENTS,
    INTEGRITY_PREFIX,
    LOW_VALUES,
    NO,
    OVERALL,
    SATISFIED_VALUES,
    SCALE_VALUES,
    YES,
    Tally,
    is_integrity,
    is_scored,
)
from flows.scores.points import own_point
from storage.bulk import insert_rows
from storage.models import (
    Answer,
    Case,
    Channel,
    DailyCount,
    DailyProcedureCount,
    MonthlyCount,
    MonthlyProcedureCount,
    OnTime,
    OutboundMessage,
    OutboxStatus,
    Procedure,
    Survey,
    SurveyStatus,
    UnitPoint,
)

ALL_CHANNELS = "all"
CHANNELS = (ALL_CHANNELS, "sms", "zalo")
CASE_COUNTERS = ("cases_closed", "cases_early", "cases_on_time", "cases_late", "cases_bad_766")
SURVEY_COUNTERS = (
    "surveys",
    "surveys_sent",
    "surveys_delivered",
    "surveys_responded",
    "surveys_completed",
    "surveys_opted_out",
    "surveys_expired",
    "surveys_undeliverable",
    "surveys_repeat_phone",
    "overall_low",
)
COUNTERS = frozenset(CASE_COUNTERS + SURVEY_COUNTERS)
# Channels whose gateway reports delivery (Kannel DLRs): there "delivered" needs a report.
# Elsewhere a message accepted by the provider counts as delivered.
CHANNELS_WITH_DELIVERY_REPORTS = frozenset({Channel.SMS.value})
_LEFT_US = frozenset({OutboxStatus.SENT, OutboxStatus.DELIVERED})
_TIMING_COUNTER = {
    OnTime.EARLY.value: "cases_early",
    OnTime.ON_TIME.value: "cases_on_time",
    OnTime.LATE.value: "cases_late",
}
DayFilter = tuple[ColumnElement[bool], ...]  # "Case.closed_at within the day"
# Tallies are kept per (agency, channel, procedure); this procedure is "every procedure".
ALL_PROCEDURES = ""
TallyKey = tuple[int, str, str]
# Key of the PostgreSQL advisory lock that serialises recomputations (nightly job vs CLI).
_LOCK_KEY = 0x5195_5C0E


@dataclass
class Tallies:
    """The counts of one (agency, channel) for one day while they are being gathered."""

    counters: Counter[str] = field(default_factory=Counter)
    criteria: dict[str, list[float]] = field(default_factory=dict)  # code -> [n, k, Σw, Σw·k, Σw²]

    def add(self, code: str, n: int, k: int, w: float, wk: float, w2: float) -> None:
        cell = self.criteria.setdefault(code, [0, 0, 0.0, 0.0, 0.0])
        for index, value in enumerate((n, k, w, wk, w2)):
            cell[index] += value


@dataclass(frozen=True)
class ComputeSummary:
    start: date
    end: date
    days: int
    agencies: int
    rows: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "days": self.days,
            "agencies": self.agencies,
            "rows": self.rows,
        }


def local_day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) of a local day, in UTC (what the database stores)."""
    start = datetime.combine(day, time(0), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def compute_days(
    session: Session,
    start: date,
    end: date,
    tz: ZoneInfo,
    on_day: Callable[[date], None] | None = None,
) -> ComputeSummary:
    """Replace every DailyCount row of the local days start..end (inclusive) with fresh counts.

    Runs inside the caller's transaction (delete + insert), so a failure leaves the old rows
    and running it twice leaves the same rows. The months and trend points these days feed are
    rewritten in the same transaction (roll_up). `on_day` is called after each day (progress).
    """
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    _serialise(session)
    for table in (DailyCount, DailyProcedureCount):
        session.execute(delete(table).where(table.day >= start, table.day <= end))
    agencies: set[int] = set()
    rows = 0
    day = start
    while day <= end:
        totals, by_procedure = count_day(session, day, tz)
        insert_rows(session, DailyCount.__table__, totals)  # type: ignore[arg-type]
        insert_rows(session, DailyProcedureCount.__table__, by_procedure)  # type: ignore[arg-type]
        rows += len(totals)
        agencies.update(row["agency_id"] for row in totals)
        if on_day is not None:
            on_day(day)
        day += timedelta(days=1)
    roll_up(session, start, end)
    first, _ = local_day_bounds(start, tz)
    _, last = local_day_bounds(end, tz)
    _name_procedures(session, first, last)
    return ComputeSummary(start, end, (end - start).days + 1, len(agencies), rows)


def _serialise(session: Session) -> None:
    """One rewrite of counts at a time (PostgreSQL): two recomputations of overlapping days, or a
    recomputation and the first night's roll-up, would both delete, then collide on insert."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})


def month_start(day: date) -> date:
    return day.replace(day=1)


def month_end(day: date) -> date:
    following = date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return following - timedelta(days=1)


_VALUES = ("n", "k", "w", "wk", "w2")
DAY_SPAN, MONTH_SPAN = "day", "month"


def roll_up(session: Session, start: date, end: date) -> None:
    """Rewrite what the daily rows of start..end feed: the monthly rows of the months they touch
    (MonthlyCount, MonthlyProcedureCount: their daily rows summed) and the units' trend points of
    those days and months (UnitPoint). In the caller's transaction, right after the days were
    written, so months and points never disagree with the days."""
    month = month_start(start)
    while month <= end:
        last = month_end(month)
        for daily, monthly in ((DailyCount, MonthlyCount), (DailyProcedureCount, MonthlyProcedureCount)):
            names = ["agency_id", "channel", "metric"]
            if daily is DailyProcedureCount:
                names.insert(0, "procedure_code")
            keys = [getattr(daily, name) for name in names]
            session.execute(delete(monthly).where(monthly.day == month))
            sums = select(
                *keys,
                literal(month, Date).label("day"),
                *(func.sum(getattr(daily, value)) for value in _VALUES),
                func.max(daily.computed_at),
            ).where(daily.day >= month, daily.day <= last)
            columns = [*names, "day", *_VALUES, "computed_at"]
            session.execute(insert(monthly).from_select(columns, sums.group_by(*keys)))
        _write_points(session, MONTH_SPAN, month, month)
        month = last + timedelta(days=1)
    _write_points(session, DAY_SPAN, start, end)


def roll_up_missing(session: Session) -> tuple[date, date] | None:
    """When daily counts exist but no trend point does (the first night after the upgrade that
    added them), roll up every counted day; returns the days rolled up, None when nothing was
    missing. A year of a province's counts takes about half a minute."""
    _serialise(session)
    if session.scalar(select(UnitPoint.id).limit(1)) is not None:
        return None
    first, last = session.execute(select(func.min(DailyCount.day), func.max(DailyCount.day))).one()
    if first is None or last is None:
        return None
    days = (as_date(first), as_date(last))
    roll_up(session, *days)
    return days


def _write_points(session: Session, span: str, start: date, end: date) -> None:
    """Rewrite the UnitPoint rows of `span` for start..end from the counts: per unit, day (or
    month), procedure ("" for every procedure) and channel, the unit's own point
    (flows.scores.points.own_point) and its closed cases. Every channel gets a row when the unit
    closed cases, even without answers on that channel: its cases still weigh in a roll-up."""
    session.execute(
        delete(UnitPoint).where(UnitPoint.span == span, UnitPoint.day >= start, UnitPoint.day <= end)
    )
    tables = (DailyCount, DailyProcedureCount) if span == DAY_SPAN else (MonthlyCount, MonthlyProcedureCount)
    keyed: defaultdict[tuple[str, date, int], defaultdict[str, dict[str, Tally]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    cases: dict[tuple[str, date, int], int] = {}
    for table in tables:
        procedure = (
            DailyProcedureCount.procedure_code
            if table is DailyProcedureCount
            else MonthlyProcedureCount.procedure_code
            if table is MonthlyProcedureCount
            else literal(ALL_PROCEDURES)
        )
        condition = or_(
            and_(table.metric == "cases_closed", table.channel == ALL_CHANNELS),
            table.metric.not_in(sorted(COUNTERS)),
        )
        query = select(
            procedure,
            table.day,
            table.agency_id,
            table.channel,
            table.metric,
            table.n,
            table.k,
            table.w,
            table.wk,
            table.w2,
        ).where(table.day >= start, table.day <= end, condition)
        for code, day, agency_id, channel, metric, n, k, w, wk, w2 in session.execute(query):
            key = (code, as_date(day), agency_id)
            if metric == "cases_closed":
                cases[key] = int(n)
            elif is_scored(metric) and not is_integrity(metric):
                keyed[key][channel][metric] = Tally(int(n), int(k), float(w), float(wk), float(w2))
    rows: list[dict[str, Any]] = []
    for key in sorted(set(keyed) | set(cases)):
        code, day, agency_id = key
        for channel in CHANNELS:
            point = own_point(keyed[key][channel] if key in keyed else {}, cases.get(key, 0))
            if point.cases == 0 and point.sipas.value is None and point.overall.value is None:
                continue
            rows.append(
                {
                    "procedure_code": code,
                    "span": span,
                    "day": day,
                    "agency_id": agency_id,
                    "channel": channel,
                    "cases": point.cases,
                    "sipas": point.sipas.value,
                    "sipas_n": point.sipas.n,
                    "sipas_n_eff": point.sipas.n_eff,
                    "overall": point.overall.value,
                    "overall_n": point.overall.n,
                    "overall_n_eff": point.overall.n_eff,
                }
            )
    insert_rows(session, UnitPoint.__table__, rows)  # type: ignore[arg-type]


def as_date(value: Any) -> date:
    """A Date column's value (SQLite may hand back its text)."""
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _name_procedures(session: Session, low: datetime, high: datetime) -> None:
    """Add the procedures of the cases closed in [low, high) to `procedures`, named as the one-stop
    system sent them (the greatest name when it sent several; a handful of rows, one a procedure)."""
    seen = {
        code: name
        for code, name in session.execute(
            select(Case.procedure_code, func.max(Case.procedure_name))
            .where(Case.closed_at >= low, Case.closed_at < high)
            .group_by(Case.procedure_code)
        )
    }
    if not seen:
        return
    known = {
        procedure.code: procedure
        for procedure in session.scalars(select(Procedure).where(Procedure.code.in_(sorted(seen))))
    }
    for code, name in seen.items():
        if code not in known:
            session.add(Procedure(code=code, name=name))
        elif name and known[code].name != name:
            known[code].name = name
    session.flush()


def count_day(session: Session, day: date, tz: ZoneInfo) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows (as insert parameters) of the cases closed on one local day: DailyCount's, and
    DailyProcedureCount's (the same split by the cases' procedure)."""
    low, high = local_day_bounds(day, tz)
    closed = (Case.closed_at >= low, Case.closed_at < high)
    tallies: defaultdict[TallyKey, Tallies] = defaultdict(Tallies)

    case_of: dict[int, tuple[int, str]] = {}  # case -> (agency, procedure)
    bad_cases: set[int] = set()
    # Enum columns are read as their stored text (type_coerce): turning 10^5 values into enum
    # members cost a second a night; StrEnum members compare equal to that text.
    for case_pk, agency_id, procedure, timing in session.execute(
        select(Case.id, Case.agency_id, Case.procedure_code, type_coerce(Case.on_time, String)).where(*closed)
    ):
        case_of[case_pk] = (agency_id, procedure)
        for key in ((agency_id, ALL_CHANNELS, ALL_PROCEDURES), (agency_id, ALL_CHANNELS, procedure)):
            counters = tallies[key].counters
            counters["cases_closed"] += 1
            if timing is not None:
                counters[_TIMING_COUNTER[timing]] += 1
        if timing == OnTime.LATE:
            bad_cases.add(case_pk)

    seen = _phones_answered_earlier_in_month(session, day, tz, closed)
    repeats: list[int] = []
    # Surveys with the same agency, channel, procedure and outcome (one flag per SURVEY_COUNTERS)
    # are counted together, then added to the tallies once per group.
    outcomes: Counter[tuple[int, str, str, tuple[bool, ...]]] = Counter()
    for row in session.execute(_surveys_of_the_day(closed)):
        (
            survey_id,
            case_pk,
            channel,
            status,
            phone_key,
            n_valid,
            low,
            yes,
            msg_delivered,
            msg_left,
            msg_failed,
        ) = row
        agency_id, procedure = case_of[case_pk]
        opted_out = status == SurveyStatus.OPTED_OUT
        answered = n_valid > 0 and not opted_out
        # A reply proves delivery, and delivery proves sending: keeps sent >= delivered >= responded
        # even when a delivery report is lost or a provider sends outside our outbox.
        delivered = (
            answered
            or bool(msg_delivered)
            or (channel not in CHANNELS_WITH_DELIVERY_REPORTS and bool(msg_left))
        )
        sent = delivered or bool(msg_left)
        undeliverable = not delivered and (status == SurveyStatus.FAILED or (bool(msg_failed) and not sent))
        repeat = False
        if answered and phone_key is not None:
            repeat = (agency_id, phone_key) in seen
            seen.add((agency_id, phone_key))
        if repeat:
            repeats.append(survey_id)
        low_overall = answered and not repeat and bool(low)
        if low_overall or (answered and not repeat and bool(yes)):
            bad_cases.add(case_pk)
        outcome: tuple[bool, ...] = (
            True,  # surveys
            sent,
            delivered,
            answered,
            status == SurveyStatus.COMPLETED,
            opted_out,
            status == SurveyStatus.EXPIRED,
            undeliverable,
            repeat,
            low_overall,
        )
        outcomes[agency_id, channel, procedure, outcome] += 1
    for (agency_id, channel_name, procedure, flags), surveys in outcomes.items():
        for key in _survey_keys(agency_id, channel_name, procedure):
            counters = tallies[key].counters
            for metric, flag in zip(SURVEY_COUNTERS, flags, strict=True):
                if flag:
                    counters[metric] += surveys

    for agency_id, channel, procedure, code, n, k, w, wk, w2 in session.execute(
        _criteria_of_the_day(closed, repeats)
    ):
        sums = (int(n), int(k or 0), float(w or 0.0), float(wk or 0.0), float(w2 or 0.0))
        for key in _survey_keys(agency_id, channel.value, procedure):
            tallies[key].add(code, *sums)

    for case_pk in bad_cases:
        agency_id, procedure = case_of[case_pk]
        for key in ((agency_id, ALL_CHANNELS, ALL_PROCEDURES), (agency_id, ALL_CHANNELS, procedure)):
            tallies[key].counters["cases_bad_766"] += 1

    totals: list[dict[str, Any]] = []
    by_procedure: list[dict[str, Any]] = []
    for (agency_id, channel_name, procedure), tally in sorted(tallies.items()):
        base: dict[str, Any] = {"agency_id": agency_id, "day": day, "channel": channel_name}
        target = totals
        if procedure != ALL_PROCEDURES:
            base["procedure_code"] = procedure
            target = by_procedure
        for metric, n in sorted(tally.counters.items()):
            if n:
                target.append({**base, "metric": metric, "n": n, "k": 0, "w": 0.0, "wk": 0.0, "w2": 0.0})
        for code, cell in sorted(tally.criteria.items()):
            n_answers, k_answers, w, wk, w2 = cell
            target.append(
                {**base, "metric": code, "n": int(n_answers), "k": int(k_answers), "w": w, "wk": wk, "w2": w2}
            )
    return totals, by_procedure


def _survey_keys(agency_id: int, channel: str, procedure: str) -> tuple[TallyKey, ...]:
    """Where a survey's counts go: its channel and "all", each in total and for its procedure."""
    return (
        (agency_id, channel, ALL_PROCEDURES),
        (agency_id, ALL_CHANNELS, ALL_PROCEDURES),
        (agency_id, channel, procedure),
        (agency_id, ALL_CHANNELS, procedure),
    )


def _phones_answered_earlier_in_month(
    session: Session, day: date, tz: ZoneInfo, closed: DayFilter
) -> set[tuple[int, str]]:
    """(agency, phone key) pairs whose phone (or Zalo user, for surveys without a phone) already
    answered a survey of that agency on a case closed earlier in the same calendar month: their
    answers today are repeats. Two index-friendly semi-joins against the day's own phones."""
    if day.day == 1:
        return set()
    month_start, _ = local_day_bounds(day.replace(day=1), tz)
    day_start, _ = local_day_bounds(day, tz)
    answered = (
        select(Answer.id)
        .where(Answer.survey_id == Survey.id, Answer.criterion_code.is_not(None), Answer.value.is_not(None))
        .exists()
    )
    earlier = (
        Case.closed_at >= month_start,
        Case.closed_at < day_start,
        Survey.status != SurveyStatus.OPTED_OUT,
        answered,
    )
    todays_phones = (
        select(Survey.phone_hash)
        .join(Case, Case.id == Survey.case_pk)
        .where(*closed, Survey.phone_hash.is_not(None))
    )
    todays_zalo = (
        select(Case.zalo_user_hash)
        .join(Survey, Survey.case_pk == Case.id)
        .where(*closed, Survey.phone_hash.is_(None), Case.zalo_user_hash.is_not(None))
    )
    by_phone = (
        select(Survey.agency_id, Survey.phone_hash)
        .join(Case, Case.id == Survey.case_pk)
        .where(*earlier, Survey.phone_hash.in_(todays_phones))
    )
    by_zalo = (
        select(Survey.agency_id, Case.zalo_user_hash)
        .join(Case, Case.id == Survey.case_pk)
        .where(*earlier, Survey.phone_hash.is_(None), Case.zalo_user_hash.in_(todays_zalo))
    )
    seen: set[tuple[int, str]] = set()
    for query in (by_phone, by_zalo):
        seen.update(
            (agency_id, key) for agency_id, key in session.execute(query.distinct()) if key is not None
        )
    return seen


def _message_flags(closed: DayFilter) -> Subquery:
    """Per survey of the day's cases, whether one of its messages was delivered, left us (sent or
    delivered, or sent and then failed by a delivery report: it has a sent time), or failed."""
    message = OutboundMessage

    def any_message(condition: ColumnElement[bool]) -> ColumnElement[int]:
        return func.max(case((condition, 1), else_=0))

    return (
        select(
            message.survey_id.label("survey_id"),
            any_message(message.status == OutboxStatus.DELIVERED).label("delivered"),
            any_message(or_(message.status.in_(sorted(_LEFT_US)), message.sent_at.is_not(None))).label(
                "left_us"
            ),
            any_message(message.status == OutboxStatus.FAILED).label("failed"),
        )
        .join(Survey, Survey.id == message.survey_id)
        .join(Case, Case.id == Survey.case_pk)
        .where(*closed)
        .group_by(message.survey_id)
        .subquery()
    )


def _is_integrity_code() -> ColumnElement[bool]:
    return and_(
        Answer.criterion_code.startswith(INTEGRITY_PREFIX, autoescape=True),
        func.length(Answer.criterion_code) > len(INTEGRITY_PREFIX),
    )


def valid_answer() -> ColumnElement[bool]:
    """formulas.is_valid_value in SQL: `overall` or an element's criterion with 1-5, or an
    integrity question with yes (1) or no (2)."""
    scored_code = or_(
        Answer.criterion_code == OVERALL,
        *(Answer.criterion_code == element for element in ELEMENTS),
        *(Answer.criterion_code.startswith(f"{element}.", autoescape=True) for element in ELEMENTS),
    )
    return or_(
        and_(scored_code, Answer.value.in_(sorted(SCALE_VALUES))),
        and_(_is_integrity_code(), Answer.value.in_((YES, NO))),
    )


def _surveys_of_the_day(closed: DayFilter) -> Select[*tuple[Any, ...]]:
    """One row per survey of the day's cases, in closing order: channel and status (as text), its
    valid answers counted, whether it rated `overall` 1-2 or said "yes" to an integrity question,
    and its messages' _message_flags."""
    phone_key = func.coalesce(Survey.phone_hash, Case.zalo_user_hash)
    low = case((and_(Answer.criterion_code == OVERALL, Answer.value.in_(sorted(LOW_VALUES))), 1), else_=0)
    yes = case((and_(_is_integrity_code(), Answer.value == YES), 1), else_=0)
    messages = _message_flags(closed)
    return (
        select(
            Survey.id,
            Survey.case_pk,
            type_coerce(Survey.channel, String),
            type_coerce(Survey.status, String),
            phone_key,
            func.count(Answer.id),
            func.max(low),
            func.max(yes),
            func.max(messages.c.delivered),
            func.max(messages.c.left_us),
            func.max(messages.c.failed),
        )
        .join(Case, Case.id == Survey.case_pk)
        .outerjoin(Answer, and_(Answer.survey_id == Survey.id, valid_answer()))
        .outerjoin(messages, messages.c.survey_id == Survey.id)
        .where(*closed)
        .group_by(Survey.id, Survey.case_pk, Survey.channel, Survey.status, phone_key, Case.closed_at)
        .order_by(Case.closed_at, Survey.id)
    )


def _criteria_of_the_day(
    closed: DayFilter, repeats: list[int]
) -> Select[int, Channel, str, str | None, int, Any, Any, Any, Any]:
    """Per agency, channel, procedure and criterion: valid answers, satisfied (integrity: "yes") answers, and
    their design weights w = 1/p summed (all, satisfied, squared). Opted-out surveys and the
    surveys set aside by "one phone counts once" are left out."""
    satisfied = case(
        (and_(_is_integrity_code(), Answer.value == YES), 1),
        (and_(not_(_is_integrity_code()), Answer.value.in_(sorted(SATISFIED_VALUES))), 1),
        else_=0,
    )
    weight = case((Survey.inclusion_probability > 0, 1.0 / Survey.inclusion_probability), else_=1.0)
    query = (
        select(
            Survey.agency_id,
            Survey.channel,
            Case.procedure_code,
            Answer.criterion_code,
            func.count(Answer.id),
            func.sum(satisfied),
            func.sum(weight),
            func.sum(weight * satisfied),
            func.sum(weight * weight),
        )
        .join(Survey, Survey.id == Answer.survey_id)
        .join(Case, Case.id == Survey.case_pk)
        .where(*closed, valid_answer(), Survey.status != SurveyStatus.OPTED_OUT)
        .group_by(Survey.agency_id, Survey.channel, Case.procedure_code, Answer.criterion_code)
    )
    if repeats:
        query = query.where(Survey.id.not_in(repeats))
    return query
