"""Roll-ups along a 3-level tree from real rows, on SQLite and PostgreSQL.

Tree (SIPAS_MIN_RESPONSES = 5 here):
  P  Thành phố Hà Nội (province, no cases of its own)
  ├─ D  Quận Thanh Xuân (district, no cases of its own)
  │  ├─ W1  10 cases on 11-20; 4 answered 5,4,4,2 -> 3/4 = 75        (4 answers < 5: suppressed)
  │  └─ W2  30 cases: on 11-16 6 answered 5,4,3,3,1,2 -> 2/6 = 33.33 and 9 not sampled;
  │         15 not sampled on 11-20
  ├─ S  Sở Tư pháp (department): 20 cases on 11-18; 9 answered 5,5,5,4,4,4,3,2,1 -> 6/9 = 66.67
  └─ X  a commune without cases: no row unless asked for
Each answered survey gives the same value to `overall` and `cong_chuc`, so sipas_index = overall.

Week 2026-W47 (11-16..11-22), weighted by closed cases:
  D = (10·75 + 30·33.33) / 40 = 43.75          (by responses it would be 5/10 = 50)
  P = (40·43.75 + 20·66.67) / 60 = 51.39       (by responses it would be 11/19 = 57.89)
  unit_mean(D) = 33.33 (W1 is suppressed, so only W2); unit_mean(P) = (43.75 + 66.67)/2 = 55.21
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update

from config.settings import Settings
from flows.scores.counts import compute_days
from flows.scores.report import AgencyTreeError, UnknownAgencyError, build_report
from storage.db import session_factory, transaction
from storage.models import Agency, AgencyLevel
from tests.scores.factories import make_agency, make_case, surveyed_case

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
VN = timezone(timedelta(hours=7))


def _at(day: int, minute: int) -> datetime:
    return datetime(2026, 11, day, 9, 0, tzinfo=VN) + timedelta(minutes=minute)


def seed_tree(url: str) -> None:
    with transaction(url) as s:
        p = make_agency(s, "P", name="Thành phố Hà Nội", level=AgencyLevel.PROVINCE)
        d = make_agency(s, "D", name="Quận Thanh Xuân", level=AgencyLevel.DISTRICT, parent=p)
        w1 = make_agency(s, "W1", name="Phường Khương Đình", parent=d)
        w2 = make_agency(s, "W2", name="Phường Thanh Xuân", parent=d)
        sd = make_agency(s, "S", name="Sở Tư pháp", level=AgencyLevel.DEPARTMENT, parent=p)
        make_agency(s, "X", name="Xã Không Có Hồ Sơ", parent=p)
        for unit, day, values, unsampled in (
            (w1, 20, [5, 4, 4, 2], 6),
            (w2, 16, [5, 4, 3, 3, 1, 2], 9),
            (w2, 20, [], 15),
            (sd, 18, [5, 5, 5, 4, 4, 4, 3, 2, 1], 11),
        ):
            for minute, value in enumerate(values):
                surveyed_case(s, unit, _at(day, minute), {"overall": value, "cong_chuc": value})
            for minute in range(unsampled):
                make_case(s, unit, _at(day, 100 + minute), outcome="not_sampled")
    with session_factory(url)() as s, s.begin():
        compute_days(s, date(2026, 11, 16), date(2026, 11, 22), TZ)


@pytest.fixture
def tree_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"SIPAS_MIN_RESPONSES": 5})


def report(url: str, settings: Settings, period: str, agency: str | None = None) -> dict[str, dict[str, Any]]:
    with session_factory(url)() as s:
        rows = build_report(s, period, agency, settings=settings).as_json()
    return {row["agency_code"]: row for row in rows}


def test_week_roll_up_weights_by_closed_cases(any_db_url: str, tree_settings: Settings) -> None:
    seed_tree(any_db_url)
    rows = report(any_db_url, tree_settings, "2026-W47")
    assert list(rows) == ["P", "D", "W1", "W2", "S"]  # tree order; X has no data
    pick = ("n_cases_closed", "n_responses", "sipas_index", "overall_satisfaction", "suppressed", "rank")
    got = {code: tuple(row[key] for key in pick) for code, row in rows.items()}
    assert got == {
        "P": (60, 19, 51.39, 51.39, False, 1),
        "D": (40, 10, 43.75, 43.75, False, 2),
        "W1": (10, 4, 75.0, 75.0, True, None),
        "W2": (30, 6, 33.33, 33.33, False, 1),
        "S": (20, 9, 66.67, 66.67, False, 1),
    }
    assert rows["D"]["elements"]["cong_chuc"] == 43.75
    assert rows["P"]["criteria"]["overall"]["index"] == 51.39
    assert rows["P"]["criteria"]["overall"]["n"] == 19
    assert rows["D"]["unit_mean"] == 33.33
    assert rows["P"]["unit_mean"] == 55.21
    assert rows["W2"]["unit_mean"] is None
    # Kish effective n of D: 40² / (10²/4 + 30²/6) = 9.14 -> Wilson [18.55, 72.65] (test_formulas)
    assert rows["D"]["overall_ci95"] == [18.55, 72.65]
    assert rows["W1"]["overall_ci95"] == [30.06, 95.44]  # its own k = 3, n = 4
    assert rows["D"]["own"]["n_cases_closed"] == 0
    assert rows["D"]["own"]["sipas_index"] is None
    assert rows["D"]["parent_code"] == "P"
    assert rows["D"]["level"] == "district"
    # no case of the tree has a due date: the on-time rate is unknown, not 0 %
    assert rows["P"]["on_time_rate"] is None
    # 766: cases rated 1–2 on overall are bad: W1 one (2), W2 two (1, 2), S two (2, 1): (60 - 5)/60
    assert rows["P"]["rate_766"] == 91.67


def test_units_without_answers_are_not_weighted(any_db_url: str, tree_settings: Settings) -> None:
    seed_tree(any_db_url)
    rows = report(any_db_url, tree_settings, "2026-11-20")
    assert list(rows) == ["P", "D", "W1", "W2"]
    # W2 closed 15 cases on the 20th but none was surveyed: D is W1's 75, not (10·75 + 15·0)/25
    assert rows["W2"]["n_cases_closed"] == 15
    assert rows["W2"]["sipas_index"] is None
    assert rows["D"]["sipas_index"] == 75.0
    assert rows["D"]["n_cases_closed"] == 25
    assert rows["D"]["suppressed"] is True  # 4 overall answers < 5


def test_agency_filter_gives_the_subtree(any_db_url: str, tree_settings: Settings) -> None:
    seed_tree(any_db_url)
    assert list(report(any_db_url, tree_settings, "2026-W47", "D")) == ["D", "W1", "W2"]
    # ranks stay those among all siblings, whatever is shown
    assert report(any_db_url, tree_settings, "2026-W47", "D")["D"]["rank"] == 2
    empty = report(any_db_url, tree_settings, "2026-W47", "X")
    assert list(empty) == ["X"]
    assert empty["X"]["n_cases_closed"] == 0
    assert empty["X"]["sipas_index"] is None
    assert empty["X"]["response_rate"] is None
    assert empty["X"]["overall_ci95"] is None
    assert empty["X"]["suppressed"] is True
    with session_factory(any_db_url)() as s, pytest.raises(UnknownAgencyError, match="NOPE"):
        build_report(s, "2026-W47", "NOPE", settings=tree_settings)


def test_period_outside_the_data_is_empty(any_db_url: str, tree_settings: Settings) -> None:
    seed_tree(any_db_url)
    assert report(any_db_url, tree_settings, "2026-10") == {}


def test_a_loop_in_the_agency_tree_is_reported(db_url: str, tree_settings: Settings) -> None:
    with transaction(db_url) as s:
        a = make_agency(s, "A")
        b = make_agency(s, "B", parent=a)
        s.execute(update(Agency).where(Agency.id == a.id).values(parent_id=b.id))
    with session_factory(db_url)() as s, pytest.raises(AgencyTreeError, match="A, B"):
        build_report(s, "2026-W47", settings=tree_settings)
