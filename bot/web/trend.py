"""A unit's SIPAS index period by period, for the dashboard's trend charts.

The same figure as flows.scores.report.build_report gives for the unit in each period (the
index from the elements of its criteria, rolled up along the tree weighted by closed cases; see
docs/scores.md), computed from only what the index needs: the criteria rows of the chosen channel
and the closed-case counter, summed in the database per period (one grouped query for the 30
days, one for the 12 months: flows.scores.report.grouped_counts), for the unit's subtree alone,
instead of 42 full reports;
tests/web/test_trend.py checks every point against build_report.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from flows.scores.counts import ALL_CHANNELS, COUNTERS
from flows.scores.formulas import (
    NO_ESTIMATE,
    Estimate,
    Tally,
    combine_estimates,
    element_estimates,
    is_integrity,
    is_scored,
    sipas_estimate,
)
from flows.scores.periods import Period
from flows.scores.report import count_source, grouped_counts
from storage.models import Agency

__all__ = ["sipas_trend"]

_CASES = "cases_closed"
_SKIPPED_COUNTERS = sorted(COUNTERS - {_CASES})


def _subtree(session: Session, root_id: int) -> dict[int, list[int]]:
    """Children of every unit in the subtree of `root_id` (the root included)."""
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


def sipas_trend(
    session: Session, root_id: int, parts: Sequence[Period], channel: str, procedure: str | None = None
) -> list[Estimate]:
    """The SIPAS index (with its interval) of unit `root_id` in each of `parts` (the cases of
    `procedure` only, when given)."""
    if not parts:
        return []
    tree = _subtree(session, root_id)
    criteria: dict[int, dict[int, dict[str, Tally]]] = {i: defaultdict(dict) for i in range(len(parts))}
    cases: dict[int, dict[int, int]] = {i: {} for i in range(len(parts))}
    source = count_source(procedure)
    table = source.table
    wanted = (
        table.agency_id.in_(tree),
        table.channel.in_({channel, ALL_CHANNELS}),
        table.metric.not_in(_SKIPPED_COUNTERS),
    )
    for index, agency_id, row_channel, metric, n, k, w, wk, w2 in grouped_counts(
        session, source, parts, *wanted
    ):
        if metric == _CASES:
            if row_channel == ALL_CHANNELS:
                cases[index][agency_id] = int(n or 0)
        elif row_channel == channel and is_scored(metric) and not is_integrity(metric):
            criteria[index][agency_id][metric] = Tally(
                int(n or 0), int(k or 0), float(w or 0.0), float(wk or 0.0), float(w2 or 0.0)
            )
    return [_rolled(root_id, tree, criteria[i], cases[i])[0] for i in range(len(parts))]


def _rolled(
    unit: int,
    tree: Mapping[int, Sequence[int]],
    criteria: Mapping[int, Mapping[str, Tally]],
    cases: Mapping[int, int],
) -> tuple[Estimate, int]:
    """(index, closed cases) of a unit: its own figures, combined with its children's roll-ups
    weighted by closed cases when it has children (flows.scores.report.combine)."""
    own_tallies = criteria.get(unit)
    own = sipas_estimate(element_estimates(own_tallies)) if own_tallies else NO_ESTIMATE
    own_cases = cases.get(unit, 0)
    kids = tree.get(unit, [])
    if not kids:
        return own, own_cases
    parts = [(own, own_cases), *(_rolled(kid, tree, criteria, cases) for kid in kids)]
    return combine_estimates((estimate, float(weight)) for estimate, weight in parts), sum(
        w for _, w in parts
    )
