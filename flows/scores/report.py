"""Scores of every unit for a period: own figures from daily counts, roll-ups along the agency tree.

A unit's figures are built from its own direct cases; a unit with child units reports the
roll-up of its own direct cases and its children's roll-ups, each weighted by its number of
closed cases (sipas-method.md: a unit that surveys more must not count more), plus
`unit_mean`, the plain mean of the child units' indices (the convention of published averages).

Decisions documented in docs/scores.md:
- every index (sipas_index, elements, criteria, overall, integrity rates) is rolled up by its
  own case-weighted mean over the parts where it is present; counts are summed; rate_766,
  on_time_rate and response_rate are pooled ratios of the summed counts (for the two case
  rates this equals the case-weighted mean);
- a roll-up is suppressed when its total valid `overall` answers are below the minimum; its
  95 % interval is Wilson's at Kish's effective sample size of the weighted estimate;
- `unit_mean` averages the child units that have an index and are not suppressed;
- ranks are among siblings (same parent), by sipas_index, suppressed units left out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from config.settings import Settings
from flows.scores.counts import ALL_CHANNELS, CASE_COUNTERS, COUNTERS
from flows.scores.formulas import (
    ELEMENTS,
    OVERALL,
    Tally,
    criterion_index,
    effective_sample_size,
    element_indices,
    is_integrity,
    is_scored,
    is_suppressed,
    on_time_rate,
    percent,
    plain_mean,
    rate_766,
    response_rate,
    round2,
    sipas_index,
    weighted_mean,
    wilson_interval,
)
from flows.scores.periods import Period, parse_period
from storage.models import Agency, DailyCount

CHANNELS = ("all", "sms", "zalo")


class UnknownAgencyError(LookupError):
    """`--agency` names a code that is not in the agency registry."""


class AgencyTreeError(ValueError):
    """The parent links of the registry loop, so there is no tree to roll up along."""


@dataclass(frozen=True)
class Figures:
    """One unit's (or one roll-up's) figures for a period, unrounded."""

    n_cases_closed: int
    n_cases_early: int
    n_cases_on_time: int
    n_cases_late: int
    n_cases_bad_766: int
    n_surveys_sent: int
    n_surveys_delivered: int
    n_responses: int
    n_overall: int  # valid answers to `overall`: what suppression looks at
    overall_n_eff: float  # sample size behind overall_satisfaction's interval
    sipas_index: float | None
    overall_satisfaction: float | None
    elements: Mapping[str, float | None]
    criteria: Mapping[str, tuple[float | None, int]]  # code -> (index, valid answers)
    integrity: Mapping[str, tuple[float | None, int]]  # code -> (% yes, valid answers)

    @property
    def response_rate(self) -> float | None:
        return response_rate(self.n_responses, self.n_surveys_delivered)

    @property
    def rate_766(self) -> float | None:
        return rate_766(self.n_cases_closed, self.n_cases_bad_766)

    @property
    def on_time_rate(self) -> float | None:
        return on_time_rate(self.n_cases_early, self.n_cases_on_time, self.n_cases_late, self.n_cases_closed)

    @property
    def overall_ci95(self) -> tuple[float, float] | None:
        if self.overall_satisfaction is None:
            return None
        return wilson_interval(self.overall_satisfaction / 100.0 * self.overall_n_eff, self.overall_n_eff)

    def as_json(self, minimum: int) -> dict[str, Any]:
        ci = self.overall_ci95
        return {
            "n_cases_closed": self.n_cases_closed,
            "n_surveys_sent": self.n_surveys_sent,
            "n_surveys_delivered": self.n_surveys_delivered,
            "n_responses": self.n_responses,
            "response_rate": round2(self.response_rate),
            "sipas_index": round2(self.sipas_index),
            "overall_satisfaction": round2(self.overall_satisfaction),
            "overall_ci95": None if ci is None else [round2(ci[0]), round2(ci[1])],
            "n_overall": self.n_overall,
            "elements": {code: round2(self.elements.get(code)) for code in ELEMENTS},
            "criteria": {
                code: {"index": round2(index), "n": n} for code, (index, n) in sorted(self.criteria.items())
            },
            "integrity": {
                code: {"rate": round2(rate), "n": n} for code, (rate, n) in sorted(self.integrity.items())
            },
            "rate_766": round2(self.rate_766),
            "on_time_rate": round2(self.on_time_rate),
            "suppressed": is_suppressed(self.n_overall, minimum),
        }


EMPTY_COUNTS: Mapping[str, int] = {}


def own_figures(
    counters: Mapping[str, int], criteria: Mapping[str, Tally], integrity: Mapping[str, Tally]
) -> Figures:
    """Figures of one unit straight from its summed counts."""
    elements = element_indices(criteria)
    overall = criteria.get(OVERALL, Tally())
    return Figures(
        n_cases_closed=counters.get("cases_closed", 0),
        n_cases_early=counters.get("cases_early", 0),
        n_cases_on_time=counters.get("cases_on_time", 0),
        n_cases_late=counters.get("cases_late", 0),
        n_cases_bad_766=counters.get("cases_bad_766", 0),
        n_surveys_sent=counters.get("surveys_sent", 0),
        n_surveys_delivered=counters.get("surveys_delivered", 0),
        n_responses=counters.get("surveys_responded", 0),
        n_overall=overall.n,
        overall_n_eff=float(overall.n),
        sipas_index=sipas_index(elements),
        overall_satisfaction=criterion_index(overall),
        elements=elements,
        criteria={code: (criterion_index(t), t.n) for code, t in criteria.items()},
        integrity={code: (percent(t.k, t.n), t.n) for code, t in integrity.items()},
    )


def combine(parts: Sequence[Figures]) -> Figures:
    """A roll-up: indices weighted by each part's closed cases, counts summed."""

    def weighted(values: Sequence[float | None]) -> float | None:
        return weighted_mean(zip(values, (p.n_cases_closed for p in parts), strict=True))

    def by_code(field: str) -> dict[str, tuple[float | None, int]]:
        tables: list[Mapping[str, tuple[float | None, int]]] = [getattr(p, field) for p in parts]
        codes = sorted({code for table in tables for code in table})
        return {
            code: (
                weighted([table.get(code, (None, 0))[0] for table in tables]),
                sum(table.get(code, (None, 0))[1] for table in tables),
            )
            for code in codes
        }

    overall = weighted([p.overall_satisfaction for p in parts])
    return Figures(
        n_cases_closed=sum(p.n_cases_closed for p in parts),
        n_cases_early=sum(p.n_cases_early for p in parts),
        n_cases_on_time=sum(p.n_cases_on_time for p in parts),
        n_cases_late=sum(p.n_cases_late for p in parts),
        n_cases_bad_766=sum(p.n_cases_bad_766 for p in parts),
        n_surveys_sent=sum(p.n_surveys_sent for p in parts),
        n_surveys_delivered=sum(p.n_surveys_delivered for p in parts),
        n_responses=sum(p.n_responses for p in parts),
        n_overall=sum(p.n_overall for p in parts),
        overall_n_eff=effective_sample_size(
            (p.n_cases_closed, p.overall_n_eff) for p in parts if p.overall_satisfaction is not None
        ),
        sipas_index=weighted([p.sipas_index for p in parts]),
        overall_satisfaction=overall,
        elements={code: weighted([p.elements.get(code) for p in parts]) for code in ELEMENTS},
        criteria=by_code("criteria"),
        integrity=by_code("integrity"),
    )


@dataclass(frozen=True)
class Unit:
    id: int
    code: str
    name: str
    level: str
    parent_id: int | None
    parent_code: str | None
    depth: int


@dataclass(frozen=True)
class UnitScores:
    unit: Unit
    figures: Figures  # the roll-up (equal to `own` for a unit without child units)
    own: Figures | None  # the unit's direct cases alone, when it has child units
    unit_mean: float | None
    suppressed: bool
    rank: int | None


@dataclass(frozen=True)
class Report:
    period: Period
    channel: str
    minimum: int
    rows: Sequence[UnitScores]

    def as_json(self) -> list[dict[str, Any]]:
        """Rows of `sipas scores show --format json` (contract.md keys plus extras)."""
        out = []
        for row in self.rows:
            unit = row.unit
            own = None if row.own is None else row.own.as_json(self.minimum)
            out.append(
                {
                    "agency_code": unit.code,
                    "agency_name": unit.name,
                    "level": unit.level,
                    "parent_code": unit.parent_code,
                    "period": self.period.label,
                    "period_start": self.period.start.isoformat(),
                    "period_end": self.period.end.isoformat(),
                    "channel": self.channel,
                    **row.figures.as_json(self.minimum),
                    "unit_mean": round2(row.unit_mean),
                    "rank": row.rank,
                    "own": own,
                }
            )
        return out


def build_report(
    session: Session,
    period: Period | str,
    agency_code: str | None = None,
    *,
    settings: Settings,
    channel: str = ALL_CHANNELS,
) -> Report:
    """Scores of every unit with data in the period, in tree order; with `agency_code`, that unit
    (always, even without data) and the units under it."""
    if isinstance(period, str):
        period = parse_period(period)
    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {', '.join(CHANNELS)}")
    minimum = settings.SIPAS_MIN_RESPONSES
    units = _load_units(session)
    children: defaultdict[int | None, list[Unit]] = defaultdict(list)
    for unit in units.values():
        children[unit.parent_id].append(unit)
    for siblings in children.values():
        siblings.sort(key=lambda u: u.code)
    own = _load_own_figures(session, period, channel)

    rolled: dict[int, Figures] = {}
    own_of_parent: dict[int, Figures] = {}

    def roll(unit: Unit) -> Figures:
        direct = own.get(unit.id) or own_figures(EMPTY_COUNTS, {}, {})
        kids = children.get(unit.id, [])
        if not kids:
            rolled[unit.id] = direct
            return direct
        own_of_parent[unit.id] = direct
        result = combine([direct, *(roll(kid) for kid in kids)])
        rolled[unit.id] = result
        return result

    for root in children.get(None, []):
        roll(root)
    if len(rolled) < len(units):
        looped = sorted(u.code for u in units.values() if u.id not in rolled)
        raise AgencyTreeError(f"agency parents form a loop through: {', '.join(looped)}")

    def has_data(unit: Unit) -> bool:
        return rolled[unit.id].n_cases_closed > 0

    def suppressed(unit: Unit) -> bool:
        return is_suppressed(rolled[unit.id].n_overall, minimum)

    ranks: dict[int, int | None] = {}
    for siblings in children.values():
        ranks.update(_rank([u for u in siblings if has_data(u)], rolled, suppressed))

    if agency_code is None:
        starts = children.get(None, [])
    else:
        matches = [u for u in units.values() if u.code == agency_code]
        if not matches:
            raise UnknownAgencyError(f"no agency with code {agency_code!r}")
        starts = matches

    rows: list[UnitScores] = []
    for start in starts:
        for unit in _walk(start, children):
            asked_for = agency_code is not None and unit is start
            if not has_data(unit) and not asked_for:
                continue
            kids = [k for k in children.get(unit.id, []) if has_data(k)]
            rows.append(
                UnitScores(
                    unit=unit,
                    figures=rolled[unit.id],
                    own=own_of_parent.get(unit.id),
                    unit_mean=plain_mean(rolled[k.id].sipas_index for k in kids if not suppressed(k))
                    if kids
                    else None,
                    suppressed=suppressed(unit),
                    rank=ranks.get(unit.id),
                )
            )
    return Report(period=period, channel=channel, minimum=minimum, rows=rows)


def _walk(unit: Unit, children: Mapping[int | None, Sequence[Unit]]) -> Iterator[Unit]:
    """Depth-first, parents before children, siblings by code: the order a tree is read in."""
    yield unit
    for kid in children.get(unit.id, []):
        yield from _walk(kid, children)


def _rank(
    siblings: Sequence[Unit], rolled: Mapping[int, Figures], suppressed: Callable[[Unit], bool]
) -> dict[int, int | None]:
    """Competition ranking ("1, 2, 2, 4") by sipas_index as published (2 decimals); suppressed
    units and units without an index get no rank."""
    ranked: list[tuple[float, int]] = []
    for unit in siblings:
        index = rolled[unit.id].sipas_index
        if index is not None and not suppressed(unit):
            ranked.append((round(index, 2), unit.id))
    ranked.sort(key=lambda pair: -pair[0])
    ranks: dict[int, int | None] = {u.id: None for u in siblings}
    previous: float | None = None
    position = 0
    for place, (value, unit_id) in enumerate(ranked, start=1):
        if value != previous:
            position, previous = place, value
        ranks[unit_id] = position
    return ranks


def _load_units(session: Session) -> dict[int, Unit]:
    rows = session.execute(select(Agency.id, Agency.code, Agency.name, Agency.level, Agency.parent_id)).all()
    codes = {row.id: row.code for row in rows}
    parents = {row.id: row.parent_id for row in rows}

    def depth(agency_id: int) -> int:
        seen: set[int] = set()
        level = 0
        current = parents.get(agency_id)
        while current is not None and current not in seen:
            seen.add(current)
            level += 1
            current = parents.get(current)
        return level

    return {
        row.id: Unit(
            id=row.id,
            code=row.code,
            name=row.name,
            level=str(row.level.value),
            parent_id=row.parent_id,
            parent_code=codes.get(row.parent_id) if row.parent_id is not None else None,
            depth=depth(row.id),
        )
        for row in rows
    }


def _load_own_figures(session: Session, period: Period, channel: str) -> dict[int, Figures]:
    """Each agency's own figures: the period's daily counts summed. Case counters always come from
    the "all" rows (a case has no channel); survey counters and answers from `channel`."""
    counters: defaultdict[int, dict[str, int]] = defaultdict(dict)
    criteria: defaultdict[int, dict[str, Tally]] = defaultdict(dict)
    integrity: defaultdict[int, dict[str, Tally]] = defaultdict(dict)
    result = session.execute(
        select(
            DailyCount.agency_id,
            DailyCount.channel,
            DailyCount.metric,
            func.sum(DailyCount.n),
            func.sum(DailyCount.k),
        )
        .where(
            DailyCount.day >= period.start,
            DailyCount.day <= period.end,
            DailyCount.channel.in_({channel, ALL_CHANNELS}),
        )
        .group_by(DailyCount.agency_id, DailyCount.channel, DailyCount.metric)
    )
    for agency_id, row_channel, metric, n_sum, k_sum in result:
        n, k = int(n_sum or 0), int(k_sum or 0)
        if metric in COUNTERS:
            wanted = ALL_CHANNELS if metric in CASE_COUNTERS else channel
            if row_channel == wanted:
                counters[agency_id][metric] = n
        elif row_channel == channel:
            if is_integrity(metric):
                integrity[agency_id][metric] = Tally(n, k)
            elif is_scored(metric):
                criteria[agency_id][metric] = Tally(n, k)
    return {
        agency_id: own_figures(counters[agency_id], criteria[agency_id], integrity[agency_id])
        for agency_id in set(counters) | set(criteria) | set(integrity)
    }
