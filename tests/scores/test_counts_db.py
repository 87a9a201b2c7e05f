"""Daily counts from real rows on SQLite and PostgreSQL: attribution to the local closing day,
channels, delivery, opt-outs, 766 bad cases, idempotent recomputation, and the report built on them.

One ward (W) under a province (P). Cases closed on 2026-11-20 in Hà Nội time (UTC+7):
  c1 08:00  early    SMS, delivered         overall 5, cong_chuc 4, ket_qua 3
  c2 23:30  late     SMS, delivered         overall 2, cong_chuc 2, ket_qua 5      (late + low: bad)
  c3 00:10  on time  Zalo, sent (no DLRs)   overall 4, integrity.tien 1 = yes      (complaint: bad)
     (00:10 local is 2026-11-19 17:10 UTC: still the 20th locally)
  c4 10:00  unknown  not sampled (no survey)
  c5 11:00  —        SMS, delivered, opted out; its overall 1 must not count
  c6 12:00  —        SMS, sent, no delivery report, no answer
  c7 13:00  —        SMS, message failed before sending
  c9 14:00  —        SMS, sent, delivery report lost, but answered overall 4 (a reply proves delivery)
  c8 2026-11-21 00:05 local (= 2026-11-20 17:05 UTC): belongs to the 21st
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from config.settings import Settings
from flows.scores.counts import compute_days
from flows.scores.report import build_report
from storage.db import session_factory, transaction
from storage.models import (
    Agency,
    AgencyLevel,
    Channel,
    DailyCount,
    OnTime,
    OutboxStatus,
    Survey,
    SurveyStatus,
)
from tests.scores.factories import add_answer, make_agency, make_case, surveyed_case

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
VN = timezone(timedelta(hours=7))
DAY = date(2026, 11, 20)


def at(hour: int, minute: int = 0, day: date = DAY) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=VN)


def seed(url: str) -> int:
    """The cases of the module docstring; returns the survey id of c6 (to answer it later)."""
    with transaction(url) as s:
        p = make_agency(s, "P", name="Thành phố Hà Nội", level=AgencyLevel.PROVINCE)
        w = make_agency(s, "W", name="Phường Thanh Xuân", parent=p)
        surveyed_case(s, w, at(8), {"overall": 5, "cong_chuc": 4, "ket_qua": 3}, on_time=OnTime.EARLY)
        surveyed_case(s, w, at(23, 30), {"overall": 2, "cong_chuc": 2, "ket_qua": 5}, on_time=OnTime.LATE)
        surveyed_case(
            s,
            w,
            at(0, 10),
            {"overall": 4, "integrity.tien": 1},
            on_time=OnTime.ON_TIME,
            channel=Channel.ZALO,
            message=OutboxStatus.SENT,
        )
        make_case(s, w, at(10), outcome="not_sampled")
        surveyed_case(s, w, at(11), {"overall": 1}, status=SurveyStatus.OPTED_OUT)
        c6 = surveyed_case(s, w, at(12), {}, status=SurveyStatus.ACTIVE, message=OutboxStatus.SENT)
        surveyed_case(s, w, at(13), {}, status=SurveyStatus.FAILED, message=OutboxStatus.FAILED)
        surveyed_case(s, w, at(14), {"overall": 4}, message=OutboxStatus.SENT)
        surveyed_case(s, w, at(0, 5, date(2026, 11, 21)), {"overall": 1}, on_time=OnTime.LATE)
        return s.scalars(select(Survey.id).where(Survey.case_pk == c6.id)).one()


def counts(url: str, day: date = DAY) -> dict[tuple[str, str, str], tuple[int, int]]:
    """{(agency code, channel, metric): (n, k)} of one day."""
    with session_factory(url)() as s:
        rows = s.execute(
            select(Agency.code, DailyCount.channel, DailyCount.metric, DailyCount.n, DailyCount.k)
            .join(Agency, Agency.id == DailyCount.agency_id)
            .where(DailyCount.day == day)
        ).all()
    return {(code, channel, metric): (n, k) for code, channel, metric, n, k in rows}


def compute(url: str, start: date = DAY, end: date = DAY) -> Any:
    with session_factory(url)() as s, s.begin():
        return compute_days(s, start, end, TZ)


EXPECTED_ALL = {
    ("W", "all", "cases_closed"): (8, 0),  # c1-c7 and c9
    ("W", "all", "cases_early"): (1, 0),
    ("W", "all", "cases_on_time"): (1, 0),
    ("W", "all", "cases_late"): (1, 0),
    ("W", "all", "cases_bad_766"): (2, 0),  # c2 (late, rated 2), c3 (complaint)
    ("W", "all", "surveys"): (7, 0),  # every survey: c1 c2 c3 c5 c6 c7 c9
    ("W", "all", "surveys_completed"): (4, 0),  # c1 c2 c3 c9
    ("W", "all", "surveys_undeliverable"): (1, 0),  # c7: failed, nothing left us
    ("W", "all", "surveys_sent"): (6, 0),  # c1 c2 c3 c5 c6 c9 (c7 failed before sending)
    ("W", "all", "surveys_delivered"): (5, 0),  # c1 c2 c5 by DLR, c3 on Zalo, c9 by its reply
    ("W", "all", "surveys_responded"): (4, 0),  # c1 c2 c3 c9
    ("W", "all", "surveys_opted_out"): (1, 0),
    ("W", "all", "overall_low"): (1, 0),  # c2
    ("W", "all", "overall"): (4, 3),  # 5, 2, 4, 4
    ("W", "all", "cong_chuc"): (2, 1),  # 4, 2
    ("W", "all", "ket_qua"): (2, 1),  # 3, 5
    ("W", "all", "integrity.tien"): (1, 1),  # one "yes"
}
EXPECTED_SMS = {
    ("W", "sms", "surveys"): (6, 0),
    ("W", "sms", "surveys_completed"): (3, 0),
    ("W", "sms", "surveys_undeliverable"): (1, 0),
    ("W", "sms", "surveys_sent"): (5, 0),
    ("W", "sms", "surveys_delivered"): (4, 0),
    ("W", "sms", "surveys_responded"): (3, 0),
    ("W", "sms", "surveys_opted_out"): (1, 0),
    ("W", "sms", "overall_low"): (1, 0),
    ("W", "sms", "overall"): (3, 2),  # 5, 2, 4
    ("W", "sms", "cong_chuc"): (2, 1),
    ("W", "sms", "ket_qua"): (2, 1),
}
EXPECTED_ZALO = {
    ("W", "zalo", "surveys"): (1, 0),
    ("W", "zalo", "surveys_completed"): (1, 0),
    ("W", "zalo", "surveys_sent"): (1, 0),
    ("W", "zalo", "surveys_delivered"): (1, 0),
    ("W", "zalo", "surveys_responded"): (1, 0),
    ("W", "zalo", "overall"): (1, 1),
    ("W", "zalo", "integrity.tien"): (1, 1),
}


def test_daily_counts_of_one_day(any_db_url: str) -> None:
    seed(any_db_url)
    summary = compute(any_db_url)
    assert counts(any_db_url) == EXPECTED_ALL | EXPECTED_SMS | EXPECTED_ZALO
    # the province has no cases of its own: no rows; the next day holds c8 only
    assert (summary.days, summary.agencies, summary.rows) == (1, 1, 35)
    assert counts(any_db_url, date(2026, 11, 21)) == {}  # not computed yet


def test_recomputing_is_idempotent_and_picks_up_late_answers(any_db_url: str) -> None:
    c6_survey = seed(any_db_url)
    compute(any_db_url, DAY, date(2026, 11, 21))
    first = counts(any_db_url)
    next_day = counts(any_db_url, date(2026, 11, 21))
    assert next_day[("W", "all", "cases_closed")] == (1, 0)
    assert next_day[("W", "all", "cases_bad_766")] == (1, 0)  # late and rated 1

    compute(any_db_url)  # the 20th again: same rows, the 21st untouched
    assert counts(any_db_url) == first
    assert counts(any_db_url, date(2026, 11, 21)) == next_day
    with session_factory(any_db_url)() as s:
        assert s.query(DailyCount).count() == len(first) + len(next_day)

    # c6 answers two days later; its case still belongs to the 20th
    with transaction(any_db_url) as s:
        add_answer(s, s.get_one(Survey, c6_survey), "overall", 5)
    compute(any_db_url)
    later = counts(any_db_url)
    assert later[("W", "all", "overall")] == (5, 4)
    assert later[("W", "all", "surveys_responded")] == (5, 0)
    # c6 had no delivery report: its reply proves delivery
    assert later[("W", "all", "surveys_delivered")] == (6, 0)


def test_report_of_the_day(any_db_url: str, settings: Settings) -> None:
    seed(any_db_url)
    compute(any_db_url)
    with session_factory(any_db_url)() as s:
        rows = build_report(s, "2026-11-20", settings=settings).as_json()
    assert [row["agency_code"] for row in rows] == ["P", "W"]
    province, ward = rows
    expected: dict[str, Any] = {
        "period": "2026-11-20",
        "n_cases_closed": 8,
        "n_surveys_sent": 6,
        "n_surveys_delivered": 5,
        "n_responses": 4,
        "response_rate": 80.0,  # 4 / 5
        "overall_satisfaction": 75.0,  # 3 of 4
        "overall_ci95": [30.06, 95.44],  # Wilson, k = 3, n = 4 (see test_formulas)
        "n_overall": 4,
        "sipas_index": 50.0,  # cong_chuc 1/2 = 50, ket_qua 1/2 = 50
        "elements": {"tiep_can": None, "thu_tuc": None, "cong_chuc": 50.0, "ket_qua": 50.0, "phan_anh": None},
        "criteria": {  # Wilson intervals: k = 1, n = 2 -> [9.45, 90.55]; k = 3, n = 4 as above
            "cong_chuc": {"index": 50.0, "n": 2, "ci95": [9.45, 90.55]},
            "ket_qua": {"index": 50.0, "n": 2, "ci95": [9.45, 90.55]},
            "overall": {"index": 75.0, "n": 4, "ci95": [30.06, 95.44]},
        },
        # element = mean of its criteria, interval at the smallest n_eff: here one criterion each
        "elements_ci95": {
            "tiep_can": None,
            "thu_tuc": None,
            "cong_chuc": [9.45, 90.55],
            "ket_qua": [9.45, 90.55],
            "phan_anh": None,
        },
        "sipas_ci95": [9.45, 90.55],  # mean 50 at min n_eff 2
        "integrity": {"integrity.tien": {"rate": 100.0, "n": 1, "ci95": [20.65, 100.0]}},
        "funnel": {
            "all": {
                "sent": 6,
                "delivered": 5,
                "started": 4,
                "completed": 4,
                "opted_out": 1,
                "expired": 0,
                "undeliverable": 1,
            },
            "sms": {
                "sent": 5,
                "delivered": 4,
                "started": 3,
                "completed": 3,
                "opted_out": 1,
                "expired": 0,
                "undeliverable": 1,
            },
            "zalo": {
                "sent": 1,
                "delivered": 1,
                "started": 1,
                "completed": 1,
                "opted_out": 0,
                "expired": 0,
                "undeliverable": 0,
            },
        },
        "rate_766": 75.0,  # (8 - 2) / 8
        "on_time_rate": 25.0,  # (1 early + 1 on time) / 8: unknown timing stays in the denominator
        "suppressed": True,  # 4 overall answers < 30
    }
    assert {key: ward[key] for key in expected} == expected
    assert {key: province[key] for key in expected} == expected  # one child: the same figures
    assert ward["rank"] is None  # suppressed units are not ranked
    assert ward["unit_mean"] is None
    assert ward["own"] is None  # a leaf has no separate direct figures
    assert province["unit_mean"] is None  # its only child is suppressed
    assert province["own"]["n_cases_closed"] == 0
    assert province["parent_code"] is None
    assert ward["parent_code"] == "P"
    assert ward["agency_name"] == "Phường Thanh Xuân"


def test_report_by_channel(any_db_url: str, settings: Settings) -> None:
    seed(any_db_url)
    compute(any_db_url)
    with session_factory(any_db_url)() as s:
        [sms] = build_report(s, "2026-11-20", "W", settings=settings, channel="sms").as_json()
        [zalo] = build_report(s, "2026-11-20", "W", settings=settings, channel="zalo").as_json()
    assert sms["channel"] == "sms"
    assert (sms["n_surveys_sent"], sms["n_responses"], sms["response_rate"]) == (5, 3, 75.0)
    assert sms["overall_satisfaction"] == 66.67  # 2 of 3
    assert sms["integrity"] == {}
    assert zalo["criteria"] == {"overall": {"index": 100.0, "n": 1, "ci95": [20.65, 100.0]}}
    assert sms["funnel"] == zalo["funnel"]  # the funnel always shows every channel
    # case figures have no channel: the same in every channel's report
    assert sms["rate_766"] == zalo["rate_766"] == 75.0
    assert sms["n_cases_closed"] == zalo["n_cases_closed"] == 8


def test_opted_out_answers_do_not_count_anywhere(any_db_url: str, settings: Settings) -> None:
    with transaction(any_db_url) as s:
        w = make_agency(s, "W")
        surveyed_case(s, w, at(9), {"overall": 1, "integrity.tien": 1}, status=SurveyStatus.OPTED_OUT)
    compute(any_db_url)
    assert counts(any_db_url) == {
        ("W", "all", "cases_closed"): (1, 0),
        ("W", "all", "surveys"): (1, 0),
        ("W", "sms", "surveys"): (1, 0),
        ("W", "all", "surveys_sent"): (1, 0),
        ("W", "all", "surveys_delivered"): (1, 0),
        ("W", "all", "surveys_opted_out"): (1, 0),
        ("W", "sms", "surveys_sent"): (1, 0),
        ("W", "sms", "surveys_delivered"): (1, 0),
        ("W", "sms", "surveys_opted_out"): (1, 0),
    }


def test_compute_refuses_a_reversed_range(db_url: str) -> None:
    with session_factory(db_url)() as s, pytest.raises(ValueError, match="before start"):
        compute_days(s, date(2026, 11, 21), DAY, TZ)
