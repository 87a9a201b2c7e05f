"""Hand-worked fixtures: design weights, Kish n, rank ranges, one phone counts once, anomaly flags.

Every expected figure is worked out in the comments; the code must agree to 2 decimals.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from config.settings import Settings
from flows.scores.anomalies import detect_days
from flows.scores.counts import compute_days
from flows.scores.formulas import Tally, rank_ranges, round2, tally_estimate
from flows.scores.report import build_report
from storage.db import session_factory, transaction
from storage.models import Agency, AgencyLevel, AnomalyFlag, Answer, Case, Survey
from tests.scores.factories import make_agency, surveyed_case

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
VN = timezone(timedelta(hours=7))


def at(day: int, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, 9, 0, tzinfo=VN) + timedelta(minutes=minute)


def test_weighted_criterion_and_kish_n_by_hand() -> None:
    # answers (w = 1/p): satisfied w=2, not w=2, satisfied w=1, not w=4
    # C = 100 · (2 + 1) / (2 + 2 + 1 + 4) = 33.33 (unweighted it would be 2/4 = 50)
    # n_eff = (Σw)² / Σw² = 81 / (4 + 4 + 1 + 16) = 3.24
    # Wilson at p = 1/3, n = 3.24: z²/n = 1.185636, centre = (0.333333 + 0.592818) / 2.185636
    # = 0.423744, half = 1.959964 · sqrt(0.068587 + 0.091484) / 2.185636 = 0.358779
    # -> [6.50, 78.25]
    estimate = tally_estimate(Tally(n=4, k=2, w=9.0, wk=3.0, w2=25.0))
    assert round2(estimate.value) == 33.33
    assert estimate.n_eff == pytest.approx(3.24)
    assert estimate.ci95 is not None
    assert (round2(estimate.ci95[0]), round2(estimate.ci95[1])) == (6.50, 78.25)
    # a tally without weights weighs each answer 1: 2/4 = 50 at n_eff 4
    plain = tally_estimate(Tally(4, 2))
    assert (plain.value, plain.n_eff) == (50.0, 4.0)


def test_rank_ranges_by_hand() -> None:
    # A [60, 80]  B [70, 90]  C [40, 55]  D [85, 95]
    # A: wholly above it D -> best 2; wholly below it C -> worst 4 - 1 = 3   => 2–3
    # B: none above -> 1; below C -> 3                                         => 1–3
    # C: A, B, D above -> 4; none below -> 4                                   => 4
    # D: none above -> 1; A and C below -> 2                                   => 1–2
    ranges = rank_ranges({1: (60, 80), 2: (70, 90), 3: (40, 55), 4: (85, 95)})
    assert ranges == {1: (2, 3), 2: (1, 3), 3: (4, 4), 4: (1, 2)}


def _seed_units(url: str, probability: float) -> None:
    """Two wards with the same answers; the second's surveys were sampled with `probability`."""
    with transaction(url) as s:
        p = make_agency(s, "P", level=AgencyLevel.PROVINCE)
        for code, prob in (("A", 1.0), ("B", probability)):
            ward = make_agency(s, code, parent=p)
            for minute, value in enumerate([5, 5, 4, 3, 1, 4, 2]):
                case = surveyed_case(s, ward, at(20, minute), {"overall": value, "cong_chuc": 6 - value})
                s.execute(
                    select(Survey).where(Survey.case_pk == case.id)
                ).scalar_one().inclusion_probability = prob
    with session_factory(url)() as s, s.begin():
        compute_days(s, date(2026, 11, 20), date(2026, 11, 20), TZ)


def _rows(url: str, settings: Settings, period: str) -> dict[str, dict[str, Any]]:
    with session_factory(url)() as s:
        return {row["agency_code"]: row for row in build_report(s, period, settings=settings).as_json()}


_IDENTITY = ("agency_code", "agency_name", "rank", "rank_range")


def test_equal_inclusion_probabilities_give_exactly_the_unweighted_figures(
    any_db_url: str, settings: Settings
) -> None:
    _seed_units(any_db_url, probability=0.3)  # every survey of B weighs 1/0.3
    rows = _rows(any_db_url, settings, "2026-11-20")
    a = {key: value for key, value in rows["A"].items() if key not in _IDENTITY}
    b = {key: value for key, value in rows["B"].items() if key not in _IDENTITY}
    assert a == b
    assert rows["A"]["overall_satisfaction"] == 57.14  # 4 of 7, the unweighted share
    assert rows["A"]["n_effective"] == 7.0


def test_unequal_probabilities_weight_each_answer_by_one_over_p(any_db_url: str, settings: Settings) -> None:
    # One ward: satisfied answers from surveys with p = 1 (w 1), unsatisfied from p = 0.25 (w 4).
    # overall 5, 4 (w 1 each) and 2, 1 (w 4 each): C = 100 · 2 / 10 = 20 (unweighted 50)
    # n_eff = 10² / (1 + 1 + 16 + 16) = 2.94
    with transaction(any_db_url) as s:
        ward = make_agency(s, "W")
        for minute, (value, prob) in enumerate([(5, 1.0), (4, 1.0), (2, 0.25), (1, 0.25)]):
            case = surveyed_case(s, ward, at(20, minute), {"overall": value})
            s.execute(
                select(Survey).where(Survey.case_pk == case.id)
            ).scalar_one().inclusion_probability = prob
    with session_factory(any_db_url)() as s, s.begin():
        compute_days(s, date(2026, 11, 20), date(2026, 11, 20), TZ)
    ward_row = _rows(any_db_url, settings, "2026-11-20")["W"]
    assert ward_row["overall_satisfaction"] == 20.0
    assert ward_row["n_effective"] == 2.94
    assert ward_row["n_overall"] == 4  # n stays the number of answers


def _give_phone(session: Any, case: Case, phone_hash: str) -> None:
    case.phone_hash = phone_hash
    session.execute(select(Survey).where(Survey.case_pk == case.id)).scalar_one().phone_hash = phone_hash


def test_one_phone_counts_once_per_agency_and_month(any_db_url: str, settings: Settings) -> None:
    # Phone X answers W's case on 11-05 (overall 5), again on 11-20 (1) and 11-20 later (2);
    # phone Y answers on 11-20 (4). Phone X on another agency V on 11-20 (3) counts (other agency).
    # Phone X again on 12-02 (1): a new month, counts.
    # November, W: X once (5) + Y (4) -> 2 answers, 2 satisfied = 100 %, 2 set aside.
    with transaction(any_db_url) as s:
        w = make_agency(s, "W")
        v = make_agency(s, "V")
        for agency, when, value, phone in (
            (w, at(5), 5, "X"),
            (w, at(20, 1), 1, "X"),
            (w, at(20, 2), 2, "X"),
            (w, at(20, 3), 4, "Y"),
            (v, at(20, 4), 3, "X"),
            (w, at(2, 0, month=12), 1, "X"),
        ):
            _give_phone(s, surveyed_case(s, agency, when, {"overall": value}), phone)
    with session_factory(any_db_url)() as s, s.begin():
        compute_days(s, date(2026, 11, 1), date(2026, 12, 3), TZ)
        detect_days(s, date(2026, 11, 20), date(2026, 11, 20), settings)
    november = _rows(any_db_url, settings, "2026-11")
    assert november["W"]["n_overall"] == 2
    assert november["W"]["overall_satisfaction"] == 100.0
    assert november["W"]["n_repeat_phone"] == 2
    assert november["W"]["n_responses"] == 4  # the funnel still counts every answered survey
    assert november["W"]["funnel"]["all"]["started"] == 4
    assert november["V"]["n_overall"] == 1
    december = _rows(any_db_url, settings, "2026-12")
    assert (december["W"]["n_overall"], december["W"]["overall_satisfaction"]) == (1, 0.0)
    flags = [f for f in november["W"]["anomalies"] if f["kind"] == "repeat_phone"]
    assert flags == [{"day": "2026-11-20", "kind": "repeat_phone", "surveys": 2}]


def _flags(url: str) -> dict[tuple[str, str], dict[str, Any]]:
    with session_factory(url)() as s:
        rows = s.execute(
            select(Agency.code, AnomalyFlag.kind, AnomalyFlag.detail).join(
                Agency, Agency.id == AnomalyFlag.agency_id
            )
        ).all()
    return {(code, kind): detail for code, kind, detail in rows}


def _detect(url: str, settings: Settings, start: date, end: date) -> None:
    with session_factory(url)() as s, s.begin():
        compute_days(s, start, end, TZ)
        detect_days(s, end, end, settings)


def test_fast_answers_flag(db_url: str, settings: Settings) -> None:
    # F: 5 answered surveys, 3 of them answered 4 s after the message left -> 3/5 >= 20 %: flagged
    # G: 2 answered 4 s after sending -> fewer than 3 surveys: not flagged
    with transaction(db_url) as s:
        f = make_agency(s, "F")
        g = make_agency(s, "G")
        for minute, (agency, seconds) in enumerate(
            ((f, 4), (f, 4), (f, 4), (f, 600), (f, 900), (g, 4), (g, 4))
        ):
            case = surveyed_case(s, agency, at(20, minute), {"overall": 4})
            survey = s.execute(select(Survey).where(Survey.case_pk == case.id)).scalar_one()
            sent = case.closed_at + timedelta(minutes=1)  # factories.add_message's sent_at
            for answer in s.scalars(select(Answer).where(Answer.survey_id == survey.id)):
                answer.answered_at = sent + timedelta(seconds=seconds)
    _detect(db_url, settings, date(2026, 11, 20), date(2026, 11, 20))
    flags = _flags(db_url)
    assert flags[("F", "fast_answers")] == {"surveys": 3, "answered": 5, "seconds": 10.0}
    assert ("G", "fast_answers") not in flags


def test_identical_answers_from_few_numbers_flag(db_url: str, settings: Settings) -> None:
    # I: 5 surveys answering overall 5, cong_chuc 5 from 2 phones -> flagged
    # J: the same 5 identical answers from 5 different phones -> not flagged
    with transaction(db_url) as s:
        i = make_agency(s, "I")
        j = make_agency(s, "J")
        for minute in range(5):
            case = surveyed_case(s, i, at(20, minute), {"overall": 5, "cong_chuc": 5})
            _give_phone(s, case, f"staff-{minute % 2}")
            surveyed_case(s, j, at(20, minute), {"overall": 5, "cong_chuc": 5})
    _detect(db_url, settings, date(2026, 11, 20), date(2026, 11, 20))
    flags = _flags(db_url)
    assert flags[("I", "identical_answers")] == {
        "surveys": 5,
        "phones": 2,
        "answers": "cong_chuc=5, overall=5",
    }
    assert ("J", "identical_answers") not in flags


def test_index_jump_flag(db_url: str, settings: Settings) -> None:
    # K: on 11-10, 40 answers to cong_chuc, 4 satisfied -> 10 %, Wilson [3.96, 23.05];
    # on 11-20, 20 answers, all satisfied -> 100 %, Wilson [83.89, 100]: disjoint -> "up".
    # L: 10 % on 11-10 and 2 of 20 (10 %) on 11-20: no jump.
    with transaction(db_url) as s:
        k = make_agency(s, "K")
        unit_l = make_agency(s, "L")
        for minute in range(40):
            surveyed_case(s, k, at(10, minute), {"cong_chuc": 5 if minute < 4 else 2})
            surveyed_case(s, unit_l, at(10, minute), {"cong_chuc": 5 if minute < 4 else 2})
        for minute in range(20):
            surveyed_case(s, k, at(20, minute), {"cong_chuc": 5})
            surveyed_case(s, unit_l, at(20, minute), {"cong_chuc": 5 if minute < 2 else 1})
    _detect(db_url, settings, date(2026, 11, 10), date(2026, 11, 20))
    flags = _flags(db_url)
    assert flags[("K", "index_jump")] == {
        "index": 100.0,
        "ci95": [83.89, 100.0],
        "baseline": 10.0,
        "baseline_ci95": [3.96, 23.05],
        "direction": "up",
    }
    assert ("L", "index_jump") not in flags


def test_flags_of_a_day_are_replaced_when_it_is_recomputed(db_url: str, settings: Settings) -> None:
    with transaction(db_url) as s:
        i = make_agency(s, "I")
        for minute in range(5):
            _give_phone(s, surveyed_case(s, i, at(20, minute), {"overall": 5}), "same")
    _detect(db_url, settings, date(2026, 11, 20), date(2026, 11, 20))
    _detect(db_url, settings, date(2026, 11, 20), date(2026, 11, 20))
    with session_factory(db_url)() as s:
        kinds = sorted(s.scalars(select(AnomalyFlag.kind)))
    assert kinds == ["identical_answers", "repeat_phone"]
