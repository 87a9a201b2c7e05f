"""Counts and scores per procedure (issue 8: the dashboard's procedure filter), on SQLite and
PostgreSQL.

A province P with a ward W and a department D; cases closed on 2026-11-20 (Hà Nội time), two
procedures, KS = 1.001612 (khai sinh) and KH = 1.001193 (kết hôn):
  c1 W KS 08:00 early    SMS   overall 5, cong_chuc 4
  c2 W KS 09:00 late     SMS   overall 2, cong_chuc 5            (late + low: one bad case)
  c3 W KH 10:00 on time  Zalo  overall 4
  c4 W KH 11:00          not sampled
  c5 W KH 12:00          SMS   overall 1, from c1's phone: a repeat, its answers set aside
  c6 D KH 13:00 early    SMS   overall 5, cong_chuc 3
By hand, for W: KS 2 cases, overall 1 satisfied of 2 = 50 %, cong_chuc 2 of 2 = 100 %, index
(cong_chuc is the only element) 100; KH 3 cases, 2 responses of which 1 repeat, overall 1 of 1.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from config.settings import Settings, get_settings
from flows.scores.counts import compute_days
from flows.scores.periods import day_period
from flows.scores.report import build_report
from flows.scores.trend import sipas_trend
from storage.db import session_factory, transaction
from storage.models import (
    AgencyLevel,
    Case,
    Channel,
    DailyCount,
    DailyProcedureCount,
    OnTime,
    Procedure,
    Survey,
)
from tests.conftest import SECRET_KEY
from tests.scores.factories import make_agency, make_case, surveyed_case
from tests.scores.test_counts_db import TZ
from workers.cli import cli

VN = timezone(timedelta(hours=7))
DAY = date(2026, 11, 20)
KS, KH = "1.001612", "1.001193"


def at(hour: int) -> datetime:
    return datetime(DAY.year, DAY.month, DAY.day, hour, tzinfo=VN)


def seed(url: str) -> None:
    with transaction(url) as s:
        p = make_agency(s, "P", name="Thành phố Hà Nội", level=AgencyLevel.PROVINCE)
        w = make_agency(s, "W", name="Phường Thanh Xuân", parent=p)
        d = make_agency(s, "D", name="Sở Tư pháp", level=AgencyLevel.DEPARTMENT, parent=p)
        c1 = surveyed_case(s, w, at(8), {"overall": 5, "cong_chuc": 4}, on_time=OnTime.EARLY, procedure=KS)
        surveyed_case(s, w, at(9), {"overall": 2, "cong_chuc": 5}, on_time=OnTime.LATE, procedure=KS)
        surveyed_case(
            s, w, at(10), {"overall": 4}, on_time=OnTime.ON_TIME, channel=Channel.ZALO, procedure=KH
        )
        make_case(s, w, at(11), outcome="not_sampled", procedure=KH)
        c5 = surveyed_case(s, w, at(12), {"overall": 1}, procedure=KH)
        c5.phone_hash = c1.phone_hash
        s.execute(select(Survey).where(Survey.case_pk == c5.id)).scalar_one().phone_hash = c1.phone_hash
        surveyed_case(s, d, at(13), {"overall": 5, "cong_chuc": 3}, on_time=OnTime.EARLY, procedure=KH)
    with session_factory(url)() as s, s.begin():
        compute_days(s, DAY, DAY, TZ)


def _sums(url: str, table: Any) -> dict[tuple[int, str, str], tuple[float, ...]]:
    """(agency, channel, metric) -> (n, k, w, wk, w2) summed over every row of the day."""
    totals: defaultdict[tuple[int, str, str], list[float]] = defaultdict(lambda: [0, 0, 0.0, 0.0, 0.0])
    with session_factory(url)() as s:
        for row in s.scalars(select(table).where(table.day == DAY)):
            cell = totals[row.agency_id, row.channel, row.metric]
            for i, value in enumerate((row.n, row.k, row.w, row.wk, row.w2)):
                cell[i] += value
    return {key: tuple(cell) for key, cell in totals.items()}


def test_procedure_rows_add_up_to_the_totals(any_db_url: str) -> None:
    seed(any_db_url)
    totals = _sums(any_db_url, DailyCount)
    by_procedure = _sums(any_db_url, DailyProcedureCount)
    assert by_procedure.keys() == totals.keys()
    for key, cell in totals.items():
        assert by_procedure[key] == pytest.approx(cell), key
    with session_factory(any_db_url)() as s:
        procedures = {code: name for code, name in s.execute(select(Procedure.code, Procedure.name))}
        rows = s.scalar(select(DailyProcedureCount.id).limit(1))
    assert procedures == {KS: "Đăng ký khai sinh", KH: "Đăng ký kết hôn"}
    assert rows is not None
    # Recomputing replaces the day's procedure rows as a whole.
    with session_factory(any_db_url)() as s, s.begin():
        compute_days(s, DAY, DAY, TZ)
    assert _sums(any_db_url, DailyProcedureCount) == by_procedure


def test_report_of_one_procedure_by_hand(any_db_url: str, settings: Settings) -> None:
    seed(any_db_url)
    low = settings.model_copy(update={"SIPAS_MIN_RESPONSES": 1})
    with session_factory(any_db_url)() as s:
        ks = {r.unit.code: r for r in build_report(s, DAY.isoformat(), "P", settings=low, procedure=KS).rows}
        kh = {r.unit.code: r for r in build_report(s, DAY.isoformat(), "P", settings=low, procedure=KH).rows}
        every = {r.unit.code: r for r in build_report(s, DAY.isoformat(), "P", settings=low).rows}
        ward = s.scalars(select(Case.agency_id).where(Case.procedure_code == KS)).first()
        assert ward is not None
        trend = sipas_trend(s, ward, [day_period(DAY)], "all", procedure=KS)
        json_rows = build_report(s, DAY.isoformat(), "W", settings=low, procedure=KH).as_json()

    w_ks = ks["W"].figures
    assert (w_ks.n_cases_closed, w_ks.n_cases_early, w_ks.n_cases_late, w_ks.n_cases_bad_766) == (2, 1, 1, 1)
    assert (w_ks.n_responses, w_ks.n_repeat_phone, w_ks.overall.n) == (2, 0, 2)
    assert w_ks.overall_satisfaction == pytest.approx(50.0)
    assert w_ks.criteria["cong_chuc"].value == pytest.approx(100.0)
    assert w_ks.sipas_index == pytest.approx(100.0)
    assert "D" not in ks  # the department closed no KS case

    w_kh = kh["W"].figures
    assert (w_kh.n_cases_closed, w_kh.n_responses, w_kh.n_repeat_phone) == (3, 2, 1)
    assert w_kh.overall.n == 1
    assert w_kh.overall_satisfaction == pytest.approx(100.0)
    assert (w_kh.funnel["zalo"]["started"], w_kh.funnel["sms"]["started"]) == (1, 1)
    assert w_kh.rate_766 == pytest.approx(100.0)  # c5's 1 is set aside: not a bad case
    # The province's KH figures roll up W's and D's KH cases only, weighted by closed cases.
    p_kh = kh["P"].figures
    assert p_kh.n_cases_closed == 4
    assert p_kh.overall_satisfaction == pytest.approx(100.0)

    # Both procedures together are the usual figures.
    assert every["W"].figures.n_cases_closed == w_ks.n_cases_closed + w_kh.n_cases_closed
    assert every["W"].figures.overall.n == w_ks.overall.n + w_kh.overall.n
    # The dashboard's trend reads the same rows.
    assert trend[0].value == pytest.approx(w_ks.sipas_index)
    assert trend[0].ci95 == pytest.approx(w_ks.sipas.ci95)
    # The JSON says which procedure it is about.
    assert {row["procedure_code"] for row in json_rows} == {KH}


def test_scores_show_takes_a_procedure(
    db_url: str, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(db_url)
    monkeypatch.chdir(tmp_path)  # no .env
    for name, value in (
        ("DATABASE_URL", db_url),
        ("REDIS_URL", redis_url),
        ("SIPAS_SECRET_KEY", SECRET_KEY),
        ("SIPAS_MIN_RESPONSES", "1"),
    ):
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        shown = CliRunner().invoke(
            cli,
            [
                "scores",
                "show",
                "--period",
                DAY.isoformat(),
                "--agency",
                "W",
                "--procedure",
                KS,
                "--format",
                "json",
            ],
        )
    finally:
        get_settings.cache_clear()
    assert shown.exit_code == 0, shown.output
    [ward] = json.loads(shown.stdout)
    assert (ward["procedure_code"], ward["n_cases_closed"], ward["overall_satisfaction"]) == (KS, 2, 50.0)
