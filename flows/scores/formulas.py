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
    """Counts of one criterion: n valid answers, k of them satisfied (for integrity questions: yes)."""

    n: int = 0
    k: int = 0

    def __add__(self, other: Tally) -> Tally:
        return Tally(self.n + other.n, self.k + other.k)


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
    """C = 100 × satisfied / valid answers."""
    return percent(tally.k, tally.n)


def element_index(element: str, indices: Mapping[str, float | None]) -> float | None:
    """E for one element, from criterion indices keyed by criterion code.

    The element's general question (`<element>.chung`) wins when it has answers, as in the
    published national figures; otherwise E is the plain mean of the element's criteria that
    have answers (`cong_chuc` alone counts as one of them).
    """
    general = indices.get(f"{element}.{GENERAL_QUESTION}")
    if general is not None:
        return general
    return plain_mean(value for code, value in indices.items() if element_of(code) == element)


def element_indices(criteria: Mapping[str, Tally]) -> dict[str, float | None]:
    """All five element indices (None where the element has no answers) from criterion tallies."""
    indices = {code: criterion_index(tally) for code, tally in criteria.items()}
    return {element: element_index(element, indices) for element in ELEMENTS}


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
