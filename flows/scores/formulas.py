"""SIPAS score formulas (sipas-method.md, "Scores"): pure arithmetic on counts, no database.

Functions return unrounded floats; reports round to 2 decimals once, at output, so that a
mean of indices is never computed from already-rounded indices. A figure whose denominator is
zero is None ("no data"), never 0, because 0 % satisfaction and "nobody answered" must differ.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

ELEMENTS = ("tiep_can", "thu_tuc", "cong_chuc", "ket_qua", "phan_anh")
OVERALL = "overall"
GENERAL_QUESTION = "chung"  # `<element>.chung`: the element's own "in general" question
INTEGRITY_PREFIX = "integrity."
SATISFIED_VALUES = frozenset({4, 5})  # top-2-box: Hài lòng, Rất hài lòng
LOW_VALUES = frozenset({1, 2})  # Rất không hài lòng, Không hài lòng: a "bad" case for 766
SCALE_VALUES = frozenset({1, 2, 3, 4, 5})
YES, NO = 1, 2  # yes/no questions record yes = 1, no = 2 (contract.md, flows simulate)
WILSON_Z = 1.959964  # two-sided 95 %
SAMPLE_MARGIN = 0.05  # e in n = N / (1 + N·e²)


@dataclass(frozen=True)
class Tally:
    """Counts of one criterion: n valid answers, k of them satisfied (for integrity questions: yes),
    and their design weights (w = 1/p of each answer's survey): Σw, Σw over the k, and Σw².

    A tally without weights (w = 0: rows counted before weights were stored, hand-made tallies)
    weighs every answer 1, which is what equal inclusion probabilities give anyway.
    """

    n: int = 0
    k: int = 0
    w: float = 0.0
    wk: float = 0.0
    w2: float = 0.0

    def __add__(self, other: Tally) -> Tally:
        a, b = self.weights, other.weights
        return Tally(self.n + other.n, self.k + other.k, a[0] + b[0], a[1] + b[1], a[2] + b[2])

    @property
    def weights(self) -> tuple[float, float, float]:
        """(Σw, Σw·satisfied, Σw²), falling back to weight 1 per answer when none are stored."""
        if self.w > 0:
            return self.w, self.wk, self.w2
        return float(self.n), float(self.k), float(self.n)


@dataclass(frozen=True)
class Estimate:
    """A percentage with what its interval needs: `n` valid answers behind it and the effective
    sample size `n_eff` (Kish) that its Wilson interval is computed at."""

    value: float | None
    n: int = 0
    n_eff: float = 0.0

    @property
    def ci95(self) -> tuple[float, float] | None:
        if self.value is None or self.n_eff <= 0:
            return None
        return wilson_interval(self.value / 100.0 * self.n_eff, self.n_eff)


NO_ESTIMATE = Estimate(None)


def tally_estimate(tally: Tally) -> Estimate:
    """C = 100 × Σw·satisfied / Σw; n_eff = (Σw)² / Σw² (Kish). Equal weights give k/n and n."""
    w, wk, w2 = tally.weights
    if w <= 0:
        return Estimate(None, tally.n, 0.0)
    return Estimate(100.0 * wk / w, tally.n, w * w / w2 if w2 > 0 else 0.0)


def mean_estimate(parts: Iterable[Estimate]) -> Estimate:
    """The plain mean of estimates (an element from its criteria, the index from its elements).

    Its interval uses the smallest n_eff of the parts: the questions are answered by the same
    citizens, so their errors are correlated in unknown ways, and Wilson at (mean, min n_eff) is
    never narrower than the truth whatever that correlation (docs/scores.md, "Intervals").
    """
    present = [part for part in parts if part.value is not None]
    if not present:
        return NO_ESTIMATE
    value = sum(part.value for part in present if part.value is not None) / len(present)
    return Estimate(value, max(part.n for part in present), min(part.n_eff for part in present))


def combine_estimates(pairs: Iterable[tuple[Estimate, float]]) -> Estimate:
    """A roll-up of independent units' estimates weighted by their closed cases: the weighted
    mean, its answers summed, and Kish's effective n of the weighted combination."""
    given = list(pairs)
    parts = [(estimate, weight) for estimate, weight in given if estimate.value is not None and weight > 0]
    n = sum(estimate.n for estimate, _ in given)
    value = weighted_mean((estimate.value, weight) for estimate, weight in parts)
    if value is None:
        return Estimate(None, n, 0.0)
    return Estimate(value, n, effective_sample_size((weight, estimate.n_eff) for estimate, weight in parts))


def rank_ranges(intervals: Mapping[int, tuple[float, float]]) -> dict[int, tuple[int, int]]:
    """Rank ranges among siblings from their 95 % intervals (sipas-method.md): best = 1 + the
    number of siblings whose interval lies wholly above this one's, worst = the number of
    siblings minus those whose interval lies wholly below. Overlapping units share ranks."""
    total = len(intervals)
    ranges: dict[int, tuple[int, int]] = {}
    for key, (low, high) in intervals.items():
        above = sum(1 for other, (o_low, _) in intervals.items() if other != key and o_low > high)
        below = sum(1 for other, (_, o_high) in intervals.items() if other != key and o_high < low)
        ranges[key] = (1 + above, total - below)
    return ranges


def element_of(code: str) -> str | None:
    """The element a criterion code belongs to: `cong_chuc` and `cong_chuc.lich_su` -> `cong_chuc`."""
    head, _, _ = code.partition(".")
    return head if head in ELEMENTS else None


def is_integrity(code: str) -> bool:
    """Integrity questions (harassment, money beyond the fee) are rates, never part of the index."""
    return code.startswith(INTEGRITY_PREFIX) and len(code) > len(INTEGRITY_PREFIX)


def is_scored(code: str) -> bool:
    """A 1–5 question that feeds the index: `overall` or any criterion of one of the five elements."""
    return code == OVERALL or element_of(code) is not None


def is_valid_value(code: str, value: int | None) -> bool:
    """Whether an answer counts at all: scale questions need 1–5, integrity questions yes or no."""
    if value is None:
        return False
    if is_integrity(code):
        return value in (YES, NO)
    return is_scored(code) and value in SCALE_VALUES


def counts_as_k(code: str, value: int) -> bool:
    """What `k` of a criterion counts: satisfied (4–5) for scale questions, "yes" for integrity."""
    return value == YES if is_integrity(code) else value in SATISFIED_VALUES


def percent(numerator: float, denominator: float) -> float | None:
    """100 × numerator / denominator, or None when there is nothing to divide by."""
    if denominator <= 0:
        return None
    return 100.0 * numerator / denominator


def criterion_index(tally: Tally) -> float | None:
    """C = 100 × Σw·satisfied / Σw over valid answers (= 100 × k / n with equal weights)."""
    return tally_estimate(tally).value


def element_estimate(element: str, criteria: Mapping[str, Estimate]) -> Estimate:
    """E for one element, from criterion estimates keyed by criterion code.

    The element's general question (`<element>.chung`) wins when it has answers, as in the
    published national figures; otherwise E is the plain mean of the element's criteria that
    have answers (`cong_chuc` alone counts as one of them).
    """
    general = criteria.get(f"{element}.{GENERAL_QUESTION}")
    if general is not None and general.value is not None:
        return general
    return mean_estimate(estimate for code, estimate in criteria.items() if element_of(code) == element)


def element_estimates(criteria: Mapping[str, Tally]) -> dict[str, Estimate]:
    """All five element estimates (value None where the element has no answers)."""
    by_element: dict[str, dict[str, Estimate]] = {element: {} for element in ELEMENTS}
    for code, tally in criteria.items():  # each code looked at once (a trend does this 5,000 times)
        element = element_of(code)
        if element is not None:
            by_element[element][code] = tally_estimate(tally)
    return {element: element_estimate(element, by_element[element]) for element in ELEMENTS}


def element_indices(criteria: Mapping[str, Tally]) -> dict[str, float | None]:
    """The element indices alone (see element_estimates)."""
    return {code: estimate.value for code, estimate in element_estimates(criteria).items()}


def sipas_estimate(elements: Mapping[str, Estimate]) -> Estimate:
    """Equal-weight mean of the element indices present (`overall` is not an element)."""
    return mean_estimate(elements.get(element, NO_ESTIMATE) for element in ELEMENTS)


def sipas_index(elements: Mapping[str, float | None]) -> float | None:
    """Equal-weight mean of the element indices present (`overall` is not an element)."""
    return plain_mean(elements.get(element) for element in ELEMENTS)


def wilson_interval(successes: float, n: float, z: float = WILSON_Z) -> tuple[float, float] | None:
    """Wilson score interval for a proportion, as [low, high] percentages; None when n is 0.

    `n` may be an effective sample size (a roll-up's), so both arguments are floats.
    Unlike the normal approximation it stays inside 0–100 and behaves for p near 0 or 1,
    which is where small agencies' figures often are.
    """
    if n <= 0:
        return None
    p = successes / n
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    return max(0.0, centre - half) * 100.0, min(1.0, centre + half) * 100.0


def rate_766(cases_closed: int, cases_bad: int) -> float | None:
    """Quyết định 766/QĐ-TTg: 100 × (closed − late, rated 1–2 on overall, or with a complaint) / closed."""
    return percent(cases_closed - cases_bad, cases_closed)


def on_time_rate(cases_early: int, cases_on_time: int, cases_late: int, cases_closed: int) -> float | None:
    """100 × (early + on time) / closed.

    Cases whose timing is unknown (no due date) stay in the denominator, as the method says
    "/ cases closed": an agency cannot raise its rate by leaving due dates out. When no case
    at all has a known timing there is nothing to measure, and the rate is None, not 0 %.
    """
    if cases_early + cases_on_time + cases_late == 0:
        return None
    return percent(cases_early + cases_on_time, cases_closed)


def response_rate(surveys_responded: int, surveys_delivered: int) -> float | None:
    """Surveys with at least one valid answer / surveys delivered, as a percentage."""
    return percent(surveys_responded, surveys_delivered)


def is_suppressed(valid_overall_answers: int, minimum: int) -> bool:
    """Too few valid `overall` answers to publish or rank: figures are still shown, flagged."""
    return valid_overall_answers < minimum


def target_sample_size(cases_closed: int, margin: float = SAMPLE_MARGIN) -> int:
    """Responses needed for a unit and period: n = N / (1 + N·e²), rounded up (Ministry method)."""
    if cases_closed <= 0:
        return 0
    return math.ceil(cases_closed / (1 + cases_closed * margin * margin))


def plain_mean(values: Iterable[float | None]) -> float | None:
    """Mean of the values that are present; None when none is."""
    present = [value for value in values if value is not None]
    return sum(present) / len(present) if present else None


def weighted_mean(pairs: Iterable[tuple[float | None, float]]) -> float | None:
    """Σ value·weight / Σ weight over the (value, weight) pairs whose value is present and weight > 0.

    Roll-ups weight each unit by its closed cases, so a unit that surveys more (or whose
    citizens answer more) does not count more than the cases it served.
    """
    total = weighted = 0.0
    for value, weight in pairs:
        if value is None or weight <= 0:
            continue
        total += weight
        weighted += value * weight
    return weighted / total if total > 0 else None


def effective_sample_size(pairs: Iterable[tuple[float, float]]) -> float:
    """Kish's effective n of a weighted combination of independent estimates: (Σw)² / Σ(w²/n).

    `pairs` are (weight, n) of the parts that have n > 0. Equal to Σn when weights are
    proportional to n (the pooled case) and smaller otherwise, which widens the interval of
    a case-weighted roll-up honestly.
    """
    total = spread = 0.0
    for weight, n in pairs:
        if weight <= 0 or n <= 0:
            continue
        total += weight
        spread += weight * weight / n
    return total * total / spread if spread > 0 else 0.0


def round2(value: float | None) -> float | None:
    """Percentages are published with 2 decimals."""
    return None if value is None else round(value, 2)
