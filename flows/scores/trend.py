"""Units' SIPAS index and overall satisfaction period by period: the dashboard's trend charts and
the workbook's trend sheet.

The same figures as flows.scores.report.build_report gives for each unit in each period (the
index from the elements of its criteria, rolled up along the tree weighted by closed cases; see
docs/scores.md), computed from only what they need. A day or a whole calendar month is read from
the units' own points the nightly roll-up stored (storage.models.UnitPoint: one row per unit),
so a province's 30-day trend reads a few thousand rows; any other period from the chosen
channel's criteria rows and the closed-case counter, summed by flows.scores.sums. Either way the
own points are then combined along the tree here. tests/scores/test_trend.py checks every point
against build_report.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from flows.scores.counts import ALL_CHANNELS, ALL_PROCEDURES, COUNTERS, DAY_SPAN, MONTH_SPAN, month_end
from flows.scores.formulas import Estimate, Tally, is_integrity, is_scored
from flows.scores.periods import Period
from flows.scores.points import TrendPoint, combine_points, own_point
from flows.scores.sums import CountSource, CountTable, grouped_counts
from storage.models import Agency, UnitPoint

__all__ = ["TrendPoint", "sipas_trend", "subtree", "unit_trends"]

_CASES = "cases_closed"
_SKIPPED_COUNTERS = sorted(COUNTERS - {_CASES})
Owns = dict[int, TrendPoint]  # unit -> its own point in one period


def subtree(session: Session, root_id: int) -> dict[int, list[int]]:
    """Children of every unit in the subtree of `root_id` (the root included), by id."""
    children: defaultdict[int | None, list[int]] = defaultdict(list)
    for agency_id, parent_id in session.execute(select(Agency.id, Agency.parent_id)):
        children[parent_id].append(agency_id)
    tree: dict[int, list[int]] = {}
    stack = [root_id]
    while stack:
        unit = stack.pop()
        if unit in tree:
            continue  # a loop in the registry: build_report refuses it, here it is cut
        tree[unit] = children.get(unit, [])
        stack.extend(tree[unit])
    return tree


def unit_trends(
    session: Session, root_id: int, parts: Sequence[Period], channel: str, procedure: str | None = None
) -> list[dict[int, TrendPoint]]:
    """For each of `parts`, every unit of the subtree of `root_id` -> its rolled-up TrendPoint (the
    cases of `procedure` only, when given)."""
    if not parts:
        return []
    tree = subtree(session, root_id)
    members = sorted(tree)
    owns: dict[int, Owns] = {}
    stored = [i for i, part in enumerate(parts) if _span(part) is not None]
    owns.update(_stored_points(session, members, parts, stored, channel, procedure))
    counted = [i for i in range(len(parts)) if i not in owns]
    owns.update(_counted_points(session, members, [parts[i] for i in counted], counted, channel, procedure))
    out: list[dict[int, TrendPoint]] = []
    for index in range(len(parts)):
        points: dict[int, TrendPoint] = {}
        _roll(root_id, tree, owns[index], points)
        out.append(points)
    return out


def sipas_trend(
    session: Session, root_id: int, parts: Sequence[Period], channel: str, procedure: str | None = None
) -> list[Estimate]:
    """The SIPAS index (with its interval) of unit `root_id` in each of `parts`."""
    return [points[root_id].sipas for points in unit_trends(session, root_id, parts, channel, procedure)]


def _span(period: Period) -> str | None:
    """DAY_SPAN or MONTH_SPAN when the period is one day or one whole calendar month."""
    if period.n_days == 1:
        return DAY_SPAN
    if period.start.day == 1 and period.end == month_end(period.start):
        return MONTH_SPAN
    return None


def _stored_points(
    session: Session,
    members: Sequence[int],
    parts: Sequence[Period],
    indices: Sequence[int],
    channel: str,
    procedure: str | None,
) -> dict[int, Owns]:
    """The own points of the units in `members` for the parts (days, whole months) at `indices`,
    as the nightly roll-up stored them. A unit without a row closed no case and got no answer."""
    owns: dict[int, Owns] = {index: {} for index in indices}
    for span in (DAY_SPAN, MONTH_SPAN):
        index_of: defaultdict[object, list[int]] = defaultdict(list)
        for index in indices:
            if _span(parts[index]) == span:
                index_of[parts[index].start].append(index)
        if not index_of:
            continue
        query = select(
            UnitPoint.day,
            UnitPoint.agency_id,
            UnitPoint.cases,
            UnitPoint.sipas,
            UnitPoint.sipas_n,
            UnitPoint.sipas_n_eff,
            UnitPoint.overall,
            UnitPoint.overall_n,
            UnitPoint.overall_n_eff,
        ).where(
            UnitPoint.procedure_code == (procedure or ALL_PROCEDURES),
            UnitPoint.span == span,
            UnitPoint.channel == channel,
            UnitPoint.day.in_(sorted(index_of)),
            UnitPoint.agency_id.in_(members),
        )
        for (
            day,
            agency_id,
            cases,
            sipas,
            sipas_n,
            sipas_eff,
            overall,
            overall_n,
            overall_eff,
        ) in session.connection().execute(query).all():
            point = TrendPoint(
                Estimate(sipas, sipas_n, sipas_eff), Estimate(overall, overall_n, overall_eff), cases
            )
            for index in index_of[day]:
                owns[index][agency_id] = point
    return owns


def _counted_points(
    session: Session,
    members: Sequence[int],
    parts: Sequence[Period],
    indices: Sequence[int],
    channel: str,
    procedure: str | None,
) -> dict[int, Owns]:
    """The own points of the units in `members` for `parts` (at `indices` of the caller's parts),
    from their summed counts."""
    criteria: list[defaultdict[int, dict[str, Tally]]] = [defaultdict(dict) for _ in parts]
    cases: list[dict[int, int]] = [{} for _ in parts]

    def wanted(table: CountTable) -> ColumnElement[bool]:
        return table.agency_id.in_(members)

    def channels(table: CountTable) -> ColumnElement[bool]:
        return table.channel.in_(sorted({channel, ALL_CHANNELS}))

    def metrics(table: CountTable) -> ColumnElement[bool]:
        return table.metric.not_in(_SKIPPED_COUNTERS)

    for index, agency_id, row_channel, metric, n, k, w, wk, w2 in grouped_counts(
        session, CountSource(procedure), parts, wanted, channels, metrics
    ):
        if metric == _CASES:
            if row_channel == ALL_CHANNELS:
                cases[index][agency_id] = int(n or 0)
        elif row_channel == channel and is_scored(metric) and not is_integrity(metric):
            criteria[index][agency_id][metric] = Tally(
                int(n or 0), int(k or 0), float(w or 0.0), float(wk or 0.0), float(w2 or 0.0)
            )
    return {
        index: {
            unit: own_point(criteria[i].get(unit, {}), cases[i].get(unit, 0))
            for unit in set(criteria[i]) | set(cases[i])
        }
        for i, index in enumerate(indices)
    }


_NOTHING = own_point({}, 0)


def _roll(
    unit: int, tree: Mapping[int, Sequence[int]], owns: Owns, points: dict[int, TrendPoint]
) -> TrendPoint:
    """A unit's rolled point: its own, combined with its children's rolled points weighted by
    closed cases when it has children (flows.scores.report.combine)."""
    own = owns.get(unit, _NOTHING)
    kids = tree.get(unit, [])
    point = own if not kids else combine_points([own, *(_roll(kid, tree, owns, points) for kid in kids)])
    points[unit] = point
    return point
