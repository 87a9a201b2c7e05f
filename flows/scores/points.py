"""A unit's trend point: its SIPAS index, overall satisfaction and closed cases in one period.

`own_point` computes a unit's point from its own counts (what report.own_figures computes for
the same two figures); `combine_points` is report.combine for these figures alone (case-weighted
roll-up along the tree). The nightly roll-up stores own points per day and month
(storage.models.UnitPoint, flows.scores.rollup); the trend charts combine them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from flows.scores.formulas import (
    NO_ESTIMATE,
    OVERALL,
    Estimate,
    Tally,
    combine_estimates,
    element_estimates,
    sipas_estimate,
    tally_estimate,
)


@dataclass(frozen=True)
class TrendPoint:
    sipas: Estimate
    overall: Estimate
    cases: int  # closed cases: the unit's own, or its own and its units' once rolled up


def own_point(criteria: Mapping[str, Tally], cases: int) -> TrendPoint:
    """A unit's point from its own tallies of scored criteria (integrity questions left out)."""
    if not criteria:
        return TrendPoint(NO_ESTIMATE, NO_ESTIMATE, cases)
    return TrendPoint(
        sipas_estimate(element_estimates(criteria)), tally_estimate(criteria.get(OVERALL, Tally())), cases
    )


def combine_points(parts: Sequence[TrendPoint]) -> TrendPoint:
    """The roll-up of a unit's own point and its child units' rolled points."""
    return TrendPoint(
        combine_estimates((p.sipas, float(p.cases)) for p in parts),
        combine_estimates((p.overall, float(p.cases)) for p in parts),
        sum(p.cases for p in parts),
    )
