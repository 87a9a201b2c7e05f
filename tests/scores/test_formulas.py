"""Score formulas against examples computed by hand (the arithmetic is written out in comments)."""

from __future__ import annotations

import pytest

from flows.scores.formulas import (
    Tally,
    counts_as_k,
    criterion_index,
    effective_sample_size,
    element_indices,
    element_of,
    is_suppressed,
    is_valid_value,
    on_time_rate,
    plain_mean,
    rate_766,
    response_rate,
    round2,
    sipas_index,
    target_sample_size,
    weighted_mean,
    wilson_interval,
)
from flows.scores.report import Figures, combine, own_figures


def test_criterion_index_is_share_of_4_and_5() -> None:
    # answers 5,5,4,4,4,3,1: satisfied 5 of 7 -> 100 * 5 / 7 = 71.428571...
    values = [5, 5, 4, 4, 4, 3, 1]
    tally = Tally(n=len(values), k=sum(counts_as_k("overall", v) for v in values))
    assert tally == Tally(7, 5)
    assert round2(criterion_index(tally)) == 71.43
    assert criterion_index(Tally(0, 0)) is None  # nobody answered: no figure, not 0 %


def test_valid_values_and_what_k_counts() -> None:
    assert is_valid_value("cong_chuc.lich_su", 5)
    assert not is_valid_value("cong_chuc.lich_su", 6)
    assert not is_valid_value("cong_chuc", None)
    assert not is_valid_value("khac.y_kien", 4)  # not one of the five elements, not overall
    assert is_valid_value("integrity.tien", 1)
    assert not is_valid_value("integrity.tien", 3)  # yes/no questions only know 1 and 2
    assert counts_as_k("integrity.tien", 1)  # yes = 1 (contract.md)
    assert not counts_as_k("integrity.tien", 2)
    assert element_of("cong_chuc") == "cong_chuc"
    assert element_of("ket_qua.dung_han") == "ket_qua"
    assert element_of("overall") is None
    assert element_of("cong_chuc_x") is None


def test_element_index_is_mean_of_its_criteria_without_general_question() -> None:
    # cong_chuc.lich_su 3/4 = 75, cong_chuc.huong_dan 1/2 = 50, bare cong_chuc 2/2 = 100
    # E(cong_chuc) = (75 + 50 + 100) / 3 = 75; ket_qua.dung_han 1/3 = 33.33 -> E(ket_qua) = 33.33
    elements = element_indices(
        {
            "cong_chuc.lich_su": Tally(4, 3),
            "cong_chuc.huong_dan": Tally(2, 1),
            "cong_chuc": Tally(2, 2),
            "ket_qua.dung_han": Tally(3, 1),
            "overall": Tally(10, 0),
        }
    )
    assert elements["cong_chuc"] == pytest.approx(75.0)
    assert round2(elements["ket_qua"]) == 33.33
    assert elements["tiep_can"] is None
    assert elements["thu_tuc"] is None
    assert elements["phan_anh"] is None


def test_general_question_wins_over_the_mean_of_criteria() -> None:
    # same cong_chuc criteria as above (mean 75) plus cong_chuc.chung 1/3 = 33.33: E = 33.33
    elements = element_indices(
        {
            "cong_chuc.lich_su": Tally(4, 3),
            "cong_chuc.huong_dan": Tally(2, 1),
            "cong_chuc": Tally(2, 2),
            "cong_chuc.chung": Tally(3, 1),
        }
    )
    assert round2(elements["cong_chuc"]) == 33.33


def test_sipas_index_is_equal_weight_mean_of_present_elements() -> None:
    # E(cong_chuc) = 3/4 = 75, E(ket_qua) = 1/2 = 50, others absent: (75 + 50) / 2 = 62.5.
    # overall (0/10 satisfied) is not an element and must not pull the index down.
    elements = element_indices({"cong_chuc": Tally(4, 3), "ket_qua": Tally(2, 1), "overall": Tally(10, 0)})
    assert sipas_index(elements) == pytest.approx(62.5)
    assert sipas_index(element_indices({"overall": Tally(5, 5)})) is None


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        # p = 0.5, n = 100: centre 0.5, half = 1.959964·sqrt(0.0025 + 0.00009604)/1.03841 = 0.09617
        (50, 100, 40.38, 59.62),
        # p = 0.75, n = 4: z²/n = 0.960365, centre = (0.75 + 0.480182)/1.960365 = 0.627527,
        # half = 1.959964·sqrt(0.046875 + 0.060023)/1.960365 = 0.326886 -> [30.06, 95.44]
        (3, 4, 30.06, 95.44),
        # p = 0, n = 10: [0, z²/n/(1 + z²/n)] = [0, 0.384146/1.384146] = [0, 27.75]
        (0, 10, 0.0, 27.75),
        (10, 10, 72.25, 100.0),
    ],
)
def test_wilson_interval_matches_known_values(k: int, n: int, low: float, high: float) -> None:
    interval = wilson_interval(k, n)
    assert interval is not None
    assert (round2(interval[0]), round2(interval[1])) == (low, high)


def test_wilson_interval_without_answers_is_none() -> None:
    assert wilson_interval(0, 0) is None


def test_rate_766_counts_late_low_and_complaint_cases_as_bad() -> None:
    # 10 cases closed; bad = 1 late + 1 rated 2 on overall + 1 with a complaint = 3 -> 100 · 7/10
    assert rate_766(cases_closed=10, cases_bad=3) == pytest.approx(70.0)
    assert rate_766(0, 0) is None


def test_on_time_rate_keeps_unknown_timing_in_the_denominator() -> None:
    # 10 closed: 2 early, 5 on time, 1 late, 2 without a due date -> 100 · 7/10 = 70 (not 7/8 = 87.5)
    assert on_time_rate(cases_early=2, cases_on_time=5, cases_late=1, cases_closed=10) == pytest.approx(70.0)
    # 4 closed, 1 late, 3 unknown -> 0 %; but no known timing at all is no data, not 0 %
    assert on_time_rate(0, 0, 1, 4) == 0.0
    assert on_time_rate(0, 0, 0, 4) is None
    assert on_time_rate(0, 0, 0, 0) is None


def test_response_rate_is_over_delivered_surveys() -> None:
    # 4 delivered, 3 with at least one valid answer -> 75 %
    assert response_rate(3, 4) == pytest.approx(75.0)
    assert response_rate(0, 0) is None


def test_suppression_threshold_edge() -> None:
    assert is_suppressed(29, minimum=30)
    assert not is_suppressed(30, minimum=30)
    assert is_suppressed(0, minimum=1)


@pytest.mark.parametrize(
    ("closed", "needed"),
    [
        (1000, 286),  # 1000 / (1 + 1000 · 0.0025) = 1000 / 3.5 = 285.71 -> 286
        (400, 200),  # 400 / (1 + 1) = 200 exactly
        (50, 45),  # 50 / 1.125 = 44.44 -> 45
        (1, 1),
        (0, 0),
    ],
)
def test_target_sample_size(closed: int, needed: int) -> None:
    assert target_sample_size(closed) == needed


def test_means_skip_missing_values() -> None:
    assert plain_mean([None, 10.0, 20.0]) == pytest.approx(15.0)
    assert plain_mean([None]) is None
    # (80·10 + 40·30) / 40 = 50; the unit without a value and the unit without cases are left out
    assert weighted_mean([(80.0, 10), (40.0, 30), (None, 100), (99.0, 0)]) == pytest.approx(50.0)
    assert weighted_mean([(None, 5)]) is None


def _unit(cases: int, overall: Tally, cong_chuc: Tally) -> Figures:
    return own_figures({"cases_closed": cases}, {"overall": overall, "cong_chuc": cong_chuc}, {})


def test_roll_up_weights_by_closed_cases_not_responses_over_three_levels() -> None:
    # Province P > district D > wards W1, W2; department S directly under P.
    #   W1: 10 cases closed, 3 of 4 answers satisfied  -> 75
    #   W2: 30 cases closed, 2 of 6 answers satisfied  -> 33.333
    #   S : 20 cases closed, 6 of 9 answers satisfied  -> 66.667
    # D = (10·75 + 30·33.333) / 40 = 1750 / 40 = 43.75   (by responses: 5/10 = 50)
    # P = (40·43.75 + 20·66.667) / 60 = 3083.33 / 60 = 51.39   (by responses: 11/19 = 57.89)
    w1 = _unit(10, Tally(4, 3), Tally(4, 3))
    w2 = _unit(30, Tally(6, 2), Tally(6, 2))
    s = _unit(20, Tally(9, 6), Tally(9, 6))
    d = combine([own_figures({}, {}, {}), w1, w2])  # D has no direct cases of its own
    p = combine([own_figures({}, {}, {}), d, s])
    assert d.sipas_index == pytest.approx(43.75)
    assert d.overall_satisfaction == pytest.approx(43.75)
    assert d.elements["cong_chuc"].value == pytest.approx(43.75)
    assert round2(p.sipas_index) == 51.39
    assert round2(p.overall_satisfaction) == 51.39
    assert p.criteria["overall"].n == 19  # n is summed
    assert (p.n_cases_closed, p.n_overall) == (60, 19)
    # The plain mean of the child units (published-average convention): (43.75 + 66.667) / 2
    assert round2(plain_mean([d.sipas_index, s.sipas_index])) == 55.21


def test_roll_up_interval_uses_kish_effective_sample_size() -> None:
    # D above: weights 10 and 30, n 4 and 6: n_eff = 40² / (10²/4 + 30²/6) = 1600 / 175 = 9.142857
    # Wilson at p = 0.4375, n = 9.142857: centre 0.455992, half 0.270464 -> [18.55, 72.65]
    w1 = _unit(10, Tally(4, 3), Tally(4, 3))
    w2 = _unit(30, Tally(6, 2), Tally(6, 2))
    d = combine([w1, w2])
    assert d.overall.n_eff == pytest.approx(9.142857, rel=1e-6)
    assert d.overall_ci95 is not None
    assert (round2(d.overall_ci95[0]), round2(d.overall_ci95[1])) == (18.55, 72.65)
    # proportional allocation (weights ∝ n) gives back the pooled n
    assert effective_sample_size([(10, 5), (30, 15)]) == pytest.approx(20.0)


def test_roll_up_of_one_unit_is_that_unit() -> None:
    w1 = _unit(10, Tally(4, 3), Tally(4, 3))
    rolled = combine([own_figures({}, {}, {}), w1])
    assert rolled.overall_ci95 == w1.overall_ci95
    assert rolled.sipas_index == w1.sipas_index
    assert rolled.criteria == w1.criteria


def test_roll_up_pools_case_and_survey_rates() -> None:
    # A: 10 closed, 2 bad, 3 early, 4 on time, 8 delivered, 4 responded
    # B: 30 closed, 3 bad, 10 early, 10 on time, 2 delivered, 2 responded
    # rate_766 = 100 · (40 − 5)/40 = 87.5; on time = 100 · 27/40 = 67.5; response = 6/10 = 60
    a = own_figures(
        {
            "cases_closed": 10,
            "cases_bad_766": 2,
            "cases_early": 3,
            "cases_on_time": 4,
            "surveys_delivered": 8,
            "surveys_responded": 4,
        },
        {},
        {},
    )
    b = own_figures(
        {
            "cases_closed": 30,
            "cases_bad_766": 3,
            "cases_early": 10,
            "cases_on_time": 10,
            "surveys_delivered": 2,
            "surveys_responded": 2,
        },
        {},
        {},
    )
    both = combine([a, b])
    assert both.rate_766 == pytest.approx(87.5)
    assert both.on_time_rate == pytest.approx(67.5)
    assert both.response_rate == pytest.approx(60.0)
    assert both.sipas_index is None
    assert both.overall_ci95 is None
