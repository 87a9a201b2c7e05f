"""`sipas scores compute|show` through click, and the RQ job functions, on the tree of test_report_db."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import delete, func, select

from config.settings import Settings, get_settings
from flows.scores.periods import yesterday
from storage.db import session_factory
from storage.models import DailyCount, UnitPoint
from tests.conftest import SECRET_KEY
from tests.scores.test_report_db import seed_tree
from workers.cli import cli
from workers.runtime import get_runtime
from workers.scores.tasks import compute_scores, nightly_lookback_days, nightly_scores


@pytest.fixture
def env(db_url: str, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Process settings as the CLI and the worker read them (no .env: we run in an empty dir)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("SIPAS_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("SIPAS_MIN_RESPONSES", "5")
    get_settings.cache_clear()
    get_runtime.cache_clear()
    yield db_url
    get_settings.cache_clear()
    get_runtime.cache_clear()


def _seed_without_counts(url: str) -> None:
    seed_tree(url)
    with session_factory(url)() as s, s.begin():
        s.query(DailyCount).delete()


def _count_rows(url: str) -> int:
    with session_factory(url)() as s:
        return s.scalar(select(func.count()).select_from(DailyCount)) or 0


def test_compute_then_show_json(env: str) -> None:
    _seed_without_counts(env)
    runner = CliRunner()
    computed = runner.invoke(cli, ["scores", "compute", "--from", "2026-11-16", "--to", "2026-11-22"])
    assert computed.exit_code == 0, computed.output
    assert "2026-11-16..2026-11-22: 7 ngày, 3 đơn vị có dữ liệu" in computed.stdout  # W1 W2 S
    rows_after_first = _count_rows(env)
    again = runner.invoke(cli, ["scores", "compute", "--from", "2026-11-16", "--to", "2026-11-22"])
    assert again.exit_code == 0, again.output
    assert _count_rows(env) == rows_after_first

    shown = runner.invoke(cli, ["scores", "show", "--period", "2026-W47", "--format", "json"])
    assert shown.exit_code == 0, shown.output
    rows = json.loads(shown.stdout)
    assert [row["agency_code"] for row in rows] == ["P", "D", "W1", "W2", "S"]
    contract_keys = {
        "agency_code",
        "period",
        "n_surveys_sent",
        "n_responses",
        "response_rate",
        "sipas_index",
        "overall_satisfaction",
        "overall_ci95",
        "elements",
        "criteria",
        "rate_766",
        "on_time_rate",
        "suppressed",
    }
    for row in rows:
        assert contract_keys <= set(row)
    province = rows[0]
    assert (province["period"], province["sipas_index"], province["unit_mean"]) == ("2026-W47", 51.39, 55.21)
    assert province["agency_name"] == "Thành phố Hà Nội"  # UTF-8, not \\u escapes
    assert "Thành phố Hà Nội" in shown.stdout


def test_show_table_and_csv(env: str) -> None:
    seed_tree(env)
    runner = CliRunner()
    table = runner.invoke(cli, ["scores", "show", "--period", "2026-W47"])
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0] == "Điểm SIPAS kỳ 2026-W47 (16/11/2026–22/11/2026), kênh: tất cả"
    ward = next(line for line in lines if line.startswith("W1 "))
    assert "Phường Khương Đình" in ward
    assert "75,00*" in ward  # suppressed: shown, marked, not ranked
    district = next(line for line in lines if line.startswith("D "))
    assert "  Quận Thanh Xuân" in district  # indented under the province
    assert district.rstrip().endswith("2")  # rank among the province's units
    assert any("dưới 5 câu trả lời hợp lệ" in line for line in lines)

    args = ["scores", "show", "--period", "2026-W47", "--agency", "D", "--format", "csv"]
    exported = runner.invoke(cli, args)
    assert exported.exit_code == 0, exported.output
    assert exported.stdout.startswith("\ufeffagency_code,")  # BOM: Excel reads it as UTF-8
    records = list(csv.DictReader(io.StringIO(exported.stdout.removeprefix("\ufeff"))))
    assert [r["agency_code"] for r in records] == ["D", "W1", "W2"]
    assert records[0]["sipas_index"] == "43.75"
    assert records[0]["overall_ci95_low"] == "18.55"
    assert records[1]["suppressed"] == "true"
    assert records[1]["rank"] == ""
    assert records[2]["criterion.overall.n"] == "6"
    assert records[2]["element.tiep_can"] == ""


def test_show_without_data_says_so(env: str) -> None:
    result = CliRunner().invoke(cli, ["scores", "show", "--period", "2026-11-20"])
    assert result.exit_code == 0, result.output
    assert "Không có dữ liệu cho kỳ này" in result.output
    as_json = CliRunner().invoke(cli, ["scores", "show", "--period", "2026-11-20", "--format", "json"])
    assert json.loads(as_json.stdout) == []
    before = yesterday(get_settings().tz)
    default = CliRunner().invoke(cli, ["scores", "show"])  # yesterday, local time
    assert default.exit_code == 0, default.output
    headings = {
        f"Điểm SIPAS kỳ {day.isoformat()} ({day:%d/%m/%Y}), kênh: tất cả"
        for day in (before, yesterday(get_settings().tz))  # the same unless run across midnight
    }
    assert default.output.splitlines()[0] in headings


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "--period", "2026-13"], "not a real date"),
        (["show", "--period", "last week"], "not understood"),
        (["show", "--agency", "NOPE"], "no agency with code 'NOPE'"),
        (["show", "--format", "xml"], "'xml' is not one of"),
        (["compute", "--date", "2026-11-20", "--from", "2026-11-19"], "either --date or --from/--to"),
        (["compute", "--from", "2026-11-19"], "--from and --to go together"),
        (["compute", "--from", "2026-11-20", "--to", "2026-11-19"], "is before --from"),
        (["compute", "--date", "20/11/2026"], "does not match the format"),
    ],
)
def test_bad_input_is_refused_clearly(env: str, args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["scores", *args])
    assert result.exit_code == 2
    assert message in result.output


def test_compute_defaults_to_yesterday(env: str) -> None:
    result = CliRunner().invoke(cli, ["scores", "compute"])
    assert result.exit_code == 0, result.output
    assert "1 ngày, 0 đơn vị có dữ liệu, 0 dòng" in result.output


def test_jobs_recompute_through_the_runtime(env: str) -> None:
    _seed_without_counts(env)
    summary = compute_scores("2026-11-20", "2026-11-20")
    # W1: 10 "all" rows (cases_closed, cases_bad_766, 6 survey counters, overall, cong_chuc) and
    # 8 "sms" rows (the 6 survey counters and 2 criteria); W2: cases_closed only
    assert summary == {
        "start": "2026-11-20",
        "end": "2026-11-20",
        "days": 1,
        "agencies": 2,
        "rows": 19,
        "anomaly_flags": 0,
    }
    # At 01:00 on the 23rd the nightly job redoes the 18th..22nd (5 days with the default window)
    nightly = nightly_scores("2026-11-23T01:00:00+07:00")
    assert (nightly["start"], nightly["end"], nightly["days"]) == ("2026-11-18", "2026-11-22", 5)
    assert nightly["agencies"] == 3  # W1 and W2 on the 20th, S on the 18th
    assert nightly_scores("2026-11-23T01:00:00+07:00") == nightly  # idempotent
    # the same instant written in UTC (18:00 on the 22nd) is the same local night
    assert nightly_scores("2026-11-22T18:00:00+00:00") == nightly


def test_first_night_after_the_upgrade_rolls_up_the_days_counted_before(env: str) -> None:
    seed_tree(env)  # counts of 11-16..11-22, as written before the trend points existed
    with session_factory(env)() as s, s.begin():
        s.execute(delete(UnitPoint))
    nightly_scores("2026-11-28T01:00:00+07:00")  # redoes 11-23..11-27 only
    with session_factory(env)() as s:
        days = set(s.scalars(select(UnitPoint.day).where(UnitPoint.span == "day")))
        months = set(s.scalars(select(UnitPoint.day).where(UnitPoint.span == "month")))
    assert {date(2026, 11, 16), date(2026, 11, 18), date(2026, 11, 20)} <= days
    assert months == {date(2026, 11, 1)}


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]


def test_nightly_lookback_covers_the_latest_possible_answer() -> None:
    # default: 0 s delay + 10.5 h with the window closed + 72 h TTL = 82.5 h -> 1 + ceil(3.44) = 5
    assert nightly_lookback_days(_settings()) == 5
    # window open all day: 72 h -> 1 + 3 = 4 (never fewer than 4)
    assert nightly_lookback_days(_settings(SIPAS_SEND_WINDOW="00:00-24:00")) == 4
    assert nightly_lookback_days(_settings(SIPAS_SEND_WINDOW="00:00-24:00", SIPAS_SURVEY_TTL=3600)) == 4
    # a week-long survey: 168 h + 10.5 h -> 1 + ceil(7.44) = 9
    assert nightly_lookback_days(_settings(SIPAS_SURVEY_TTL=7 * 24 * 3600)) == 9
