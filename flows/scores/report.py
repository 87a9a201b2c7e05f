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

from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import partial
from typing import Any

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from config.settings import Settings
from flows.scores.counts import ALL_CHANNELS, CASE_COUNTERS, CHANNELS, COUNTERS
from flows.scores.flags import load_flags
from flows.scores.formulas import (
    ELEMENTS,
    NO_ESTIMATE,
    OVERALL,
    Estimate,
    Tally,
    combine_estimates,
    element_estimates,
    is_integrity,
    is_scored,
    is_suppressed,
    on_time_rate,
    plain_mean,
    rank_ranges,
    rate_766,
    response_rate,
    round2,
    sipas_estimate,
    tally_estimate,
)
from flows.scores.periods import Period, parse_period
from flows.scores.sums import CountSource, CountTable, grouped_counts
from storage.models import Agency


class UnknownAgencyError(LookupError):
    """`--agency` names a code that is not in the agency registry."""


class AgencyTreeError(ValueError):
    """The parent links of the registry loop, so there is no tree to roll up along."""


FUNNEL = (
    ("sent", "surveys_sent"),
    ("delivered", "surveys_delivered"),
    ("started", "surveys_responded"),
    ("completed", "surveys_completed"),
    ("opted_out", "surveys_opted_out"),
    ("expired", "surveys_expired"),
    ("undeliverable", "surveys_undeliverable"),
)
Funnel = Mapping[str, Mapping[str, int]]  # channel -> disposition -> surveys


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
    n_repeat_phone: int  # answered surveys set aside: their phone already counted this month
    sipas: Estimate
    overall: Estimate
    elements: Mapping[str, Estimate]
    criteria: Mapping[str, Estimate]
    integrity: Mapping[str, Estimate]  # value = % "yes"
    funnel: Funnel

    @property
    def sipas_index(self) -> float | None:
        return self.sipas.value

    @property
    def overall_satisfaction(self) -> float | None:
        return self.overall.value

    @property
    def n_overall(self) -> int:
        """Valid `overall` answers: what suppression looks at."""
        return self.overall.n

    @property
    def overall_ci95(self) -> tuple[float, float] | None:
        return self.overall.ci95

    @property
    def response_rate(self) -> float | None:
        return response_rate(self.n_responses, self.n_surveys_delivered)

    @property
    def rate_766(self) -> float | None:
        return rate_766(self.n_cases_closed, self.n_cases_bad_766)

    @property
    def on_time_rate(self) -> float | None:
        return on_time_rate(self.n_cases_early, self.n_cases_on_time, self.n_cases_late, self.n_cases_closed)

    def as_json(self, minimum: int) -> dict[str, Any]:
        return {
            "n_cases_closed": self.n_cases_closed,
            "n_surveys_sent": self.n_surveys_sent,
            "n_surveys_delivered": self.n_surveys_delivered,
            "n_responses": self.n_responses,
            "n_repeat_phone": self.n_repeat_phone,
            "response_rate": round2(self.response_rate),
            "sipas_index": round2(self.sipas_index),
            "sipas_ci95": _ci_json(self.sipas),
            "overall_satisfaction": round2(self.overall_satisfaction),
            "overall_ci95": _ci_json(self.overall),
            "n_overall": self.n_overall,
            "n_effective": round2(self.overall.n_eff),
            "elements": {code: round2(self.elements[code].value) for code in ELEMENTS},
            "elements_ci95": {code: _ci_json(self.elements[code]) for code in ELEMENTS},
            "criteria": {code: _estimate_json(e, "index") for code, e in sorted(self.criteria.items())},
            "integrity": {code: _estimate_json(e, "rate") for code, e in sorted(self.integrity.items())},
            "rate_766": round2(self.rate_766),
            "on_time_rate": round2(self.on_time_rate),
            "funnel": {channel: dict(counts) for channel, counts in self.funnel.items()},
            "suppressed": is_suppressed(self.n_overall, minimum),
        }


def _ci_json(estimate: Estimate) -> list[float | None] | None:
    ci = estimate.ci95
    return None if ci is None else [round2(ci[0]), round2(ci[1])]


def _estimate_json(estimate: Estimate, key: str) -> dict[str, Any]:
    return {key: round2(estimate.value), "n": estimate.n, "ci95": _ci_json(estimate)}


EMPTY_COUNTS: Mapping[str, int] = {}


def funnel_of(counters: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, int]]:
    """The response funnel per channel ("all", "sms", "zalo") from per-channel counters."""
    return {
        channel: {name: counters.get(channel, EMPTY_COUNTS).get(metric, 0) for name, metric in FUNNEL}
        for channel in CHANNELS
    }


def own_figures(
    counters: Mapping[str, int],
    criteria: Mapping[str, Tally],
    integrity: Mapping[str, Tally],
    funnel: Funnel | None = None,
) -> Figures:
    """Figures of one unit straight from its summed counts."""
    elements = element_estimates(criteria)
    return Figures(
        n_cases_closed=counters.get("cases_closed", 0),
        n_cases_early=counters.get("cases_early", 0),
        n_cases_on_time=counters.get("cases_on_time", 0),
        n_cases_late=counters.get("cases_late", 0),
        n_cases_bad_766=counters.get("cases_bad_766", 0),
        n_surveys_sent=counters.get("surveys_sent", 0),
        n_surveys_delivered=counters.get("surveys_delivered", 0),
        n_responses=counters.get("surveys_responded", 0),
        n_repeat_phone=counters.get("surveys_repeat_phone", 0),
        sipas=sipas_estimate(elements),
        overall=tally_estimate(criteria.get(OVERALL, Tally())),
        elements=elements,
        criteria={code: tally_estimate(t) for code, t in criteria.items()},
        integrity={code: tally_estimate(t) for code, t in integrity.items()},
        funnel=funnel if funnel is not None else funnel_of({}),
    )


def combine(parts: Sequence[Figures]) -> Figures:
    """A roll-up: indices weighted by each part's closed cases (Kish n_eff), counts summed."""
    cases = [p.n_cases_closed for p in parts]

    def weighted(estimates: Sequence[Estimate]) -> Estimate:
        return combine_estimates(zip(estimates, cases, strict=True))

    def by_code(field: str) -> dict[str, Estimate]:
        tables: list[Mapping[str, Estimate]] = [getattr(p, field) for p in parts]
        codes = sorted({code for table in tables for code in table})
        return {code: weighted([table.get(code, NO_ESTIMATE) for table in tables]) for code in codes}

    return Figures(
        n_cases_closed=sum(cases),
        n_cases_early=sum(p.n_cases_early for p in parts),
        n_cases_on_time=sum(p.n_cases_on_time for p in parts),
        n_cases_late=sum(p.n_cases_late for p in parts),
        n_cases_bad_766=sum(p.n_cases_bad_766 for p in parts),
        n_surveys_sent=sum(p.n_surveys_sent for p in parts),
        n_surveys_delivered=sum(p.n_surveys_delivered for p in parts),
        n_responses=sum(p.n_responses for p in parts),
        n_repeat_phone=sum(p.n_repeat_phone for p in parts),
        sipas=weighted([p.sipas for p in parts]),
        overall=weighted([p.overall for p in parts]),
        elements={code: weighted([p.elements.get(code, NO_ESTIMATE) for p in parts]) for code in ELEMENTS},
        criteria=by_code("criteria"),
        integrity=by_code("integrity"),
        funnel={
            channel: {name: sum(p.funnel[channel][name] for p in parts) for name, _ in FUNNEL}
            for channel in CHANNELS
        },
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
    valid_from: date | None = None
    valid_to: date | None = None
    successor_code: str | None = None


@dataclass(frozen=True)
class UnitScores:
    unit: Unit
    figures: Figures  # the roll-up (equal to `own` for a unit without child units)
    own: Figures | None  # the unit's direct cases alone, when it has child units
    unit_mean: float | None
    suppressed: bool
    rank: int | None
    rank_range: tuple[int, int] | None
    anomalies: Sequence[Mapping[str, Any]] = ()


@dataclass(frozen=True)
class Report:
    period: Period
    channel: str
    minimum: int
    rows: Sequence[UnitScores]
    procedure: str | None = None  # the cases of this procedure only; None: every procedure

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
                    "procedure_code": self.procedure,
                    **row.figures.as_json(self.minimum),
                    "unit_mean": round2(row.unit_mean),
                    "rank": row.rank,
                    "rank_range": None if row.rank_range is None else list(row.rank_range),
                    "anomalies": [dict(flag) for flag in row.anomalies],
                    "valid_from": None if unit.valid_from is None else unit.valid_from.isoformat(),
                    "valid_to": None if unit.valid_to is None else unit.valid_to.isoformat(),
                    "successor_code": unit.successor_code,
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
    with_predecessors: bool = False,
    procedure: str | None = None,
) -> Report:
    """Scores of every unit with data in the period, in tree order; with `agency_code`, that unit
    (always, even without data) and the units under it. `with_predecessors` counts a merged
    unit's cases as its successor's (a new ward's trend then starts before the ward existed);
    `procedure` counts the cases of that procedure only (anomaly flags stay the unit's)."""
    chosen = parse_period(period) if isinstance(period, str) else period
    [report] = build_reports(
        session,
        [chosen],
        agency_code,
        settings=settings,
        channel=channel,
        with_predecessors=with_predecessors,
        procedure=procedure,
    )
    return report


def build_reports(
    session: Session,
    periods: Sequence[Period],
    agency_code: str | None = None,
    *,
    settings: Settings,
    channel: str = ALL_CHANNELS,
    with_predecessors: bool = False,
    procedure: str | None = None,
) -> list[Report]:
    """build_report for several periods (a trend), reading the registry and the flags once."""
    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {', '.join(CHANNELS)}")
    if not periods:
        return []
    units = _load_units(session)
    children: defaultdict[int | None, list[Unit]] = defaultdict(list)
    for unit in units.values():
        children[unit.parent_id].append(unit)
    for siblings in children.values():
        siblings.sort(key=lambda u: u.code)
    fold = successor_map(units) if with_predecessors else None
    span = Period("span", min(p.start for p in periods), max(p.end for p in periods))
    all_flags = load_flags(session, span)
    reports = []
    own_by_period = _load_own_figures(session, periods, channel, fold, CountSource(procedure))
    for period, own in zip(periods, own_by_period, strict=True):
        flags = {
            agency_id: [f for f in listed if period.start.isoformat() <= f["day"] <= period.end.isoformat()]
            for agency_id, listed in all_flags.items()
        }
        reports.append(
            _assemble(period, agency_code, settings, (channel, procedure), units, children, own, flags)
        )
    return reports


def _assemble(
    period: Period,
    agency_code: str | None,
    settings: Settings,
    view: tuple[str, str | None],
    units: Mapping[int, Unit],
    children: Mapping[int | None, list[Unit]],
    own: Mapping[int, Figures],
    flags: Mapping[int, Sequence[Mapping[str, Any]]],
) -> Report:
    """One period's report from its units' own figures: roll-ups, suppression, ranks, rows.
    `view` is the (channel, procedure) the figures were read for."""
    minimum = settings.SIPAS_MIN_RESPONSES
    channel, procedure = view

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
    ranges: dict[int, tuple[int, int]] = {}
    for siblings in children.values():
        present = [u for u in siblings if has_data(u)]
        ranks.update(_rank(present, rolled, suppressed))
        intervals = {
            u.id: ci for u in present if not suppressed(u) and (ci := rolled[u.id].sipas.ci95) is not None
        }
        ranges.update(rank_ranges(intervals))

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
                    rank_range=ranges.get(unit.id),
                    anomalies=flags.get(unit.id, ()),
                )
            )
    return Report(period=period, channel=channel, minimum=minimum, rows=rows, procedure=procedure)


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
    rows = session.execute(
        select(
            Agency.id,
            Agency.code,
            Agency.name,
            Agency.level,
            Agency.parent_id,
            Agency.valid_from,
            Agency.valid_to,
            Agency.successor_id,
        )
    ).all()
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
            valid_from=row.valid_from,
            valid_to=row.valid_to,
            successor_code=codes.get(row.successor_id) if row.successor_id is not None else None,
        )
        for row in rows
    }


def successor_map(units: Mapping[int, Unit]) -> dict[int, int]:
    """Each merged unit's id -> the id of the unit that finally took it over (chains followed,
    a loop in the successor links stops where it repeats)."""
    by_code = {unit.code: unit.id for unit in units.values()}
    targets: dict[int, int] = {}
    for unit in units.values():
        seen = {unit.id}
        current = unit
        while current.successor_code is not None and by_code.get(current.successor_code) not in seen:
            current = units[by_code[current.successor_code]]
            seen.add(current.id)
        if current.id != unit.id:
            targets[unit.id] = current.id
    return targets


def _channel_or_counter(channel: str, table: CountTable) -> ColumnElement[bool]:
    return or_(table.channel == channel, table.metric.in_(sorted(COUNTERS)))


def _load_own_figures(
    session: Session,
    periods: Sequence[Period],
    channel: str,
    fold: Mapping[int, int] | None,
    source: CountSource,
) -> list[dict[int, Figures]]:
    """For each period, each agency's own figures: the period's daily counts summed. Case counters
    always come from the "all" rows (a case has no channel); survey counters and answers from
    `channel`; the response funnel from every channel's survey counters. With `fold` (merged unit
    -> successor), a merged unit's counts are added to its successor's."""
    counters: list[defaultdict[int, defaultdict[str, Counter[str]]]] = [
        defaultdict(lambda: defaultdict(Counter)) for _ in periods
    ]
    criteria: list[defaultdict[int, defaultdict[str, Tally]]] = [
        defaultdict(lambda: defaultdict(Tally)) for _ in periods
    ]
    integrity: list[defaultdict[int, defaultdict[str, Tally]]] = [
        defaultdict(lambda: defaultdict(Tally)) for _ in periods
    ]
    fold = fold or {}
    # Answers of the other channels are not read: only their counters feed the funnel.
    wanted = partial(_channel_or_counter, channel)
    for part, row_agency, row_channel, metric, n_sum, k_sum, w_sum, wk_sum, w2_sum in grouped_counts(
        session, source, periods, wanted
    ):
        agency_id = fold.get(row_agency, row_agency)
        n, k = int(n_sum or 0), int(k_sum or 0)
        if metric in COUNTERS:
            counters[part][agency_id][row_channel][metric] += n
        elif row_channel == channel:
            tally = Tally(n, k, float(w_sum or 0.0), float(wk_sum or 0.0), float(w2_sum or 0.0))
            if is_integrity(metric):
                integrity[part][agency_id][metric] += tally
            elif is_scored(metric):
                criteria[part][agency_id][metric] += tally
    result: list[dict[int, Figures]] = []
    for part in range(len(periods)):
        figures: dict[int, Figures] = {}
        for agency_id in set(counters[part]) | set(criteria[part]) | set(integrity[part]):
            by_channel = counters[part][agency_id]
            chosen = {
                **{m: n for m, n in by_channel.get(channel, {}).items() if m not in CASE_COUNTERS},
                **{m: n for m, n in by_channel.get(ALL_CHANNELS, {}).items() if m in CASE_COUNTERS},
            }
            figures[agency_id] = own_figures(
                chosen, criteria[part][agency_id], integrity[part][agency_id], funnel_of(by_channel)
            )
        result.append(figures)
    return result
