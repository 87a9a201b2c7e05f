"""`sipas export xlsx` opened with openpyxl and checked cell by cell against `scores show --format json`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from openpyxl import load_workbook
from sqlalchemy import select

from flows.scores.formulas import ELEMENTS
from flows.scores.periods import parse_period
from flows.scores.render import criterion_name
from flows.scores.xlsx import PERCENT_FORMAT, UNIT_HEADERS, trend_periods, unit_row
from storage.db import transaction
from storage.models import Agency, Comment, Survey
from tests.scores.test_cli_and_tasks import env  # noqa: F401  (fixture)
from tests.scores.test_report_db import seed_tree
from workers.cli import cli

INJECTION = '=HYPERLINK("http://evil.example","bấm vào") gọi 0912345678'


def _add_comment(url: str) -> None:
    with transaction(url) as s:
        ward = s.scalars(select(Agency).where(Agency.code == "W2")).one()
        survey = s.scalars(select(Survey).where(Survey.agency_id == ward.id)).first()
        assert survey is not None
        s.add(Comment(survey_id=survey.id, question_key="comment", text=INJECTION))


def _json(args: list[str]) -> list[dict[str, Any]]:
    result = CliRunner().invoke(cli, ["scores", "show", "--format", "json", *args])
    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def test_workbook_equals_scores_show_json(env: str, tmp_path: Path) -> None:  # noqa: F811
    seed_tree(env)
    _add_comment(env)
    out = tmp_path / "bao-cao.xlsx"
    result = CliRunner().invoke(cli, ["export", "xlsx", "--period", "2026-W47", "--out", str(out)])
    assert result.exit_code == 0, result.output
    book = load_workbook(out)
    assert book.sheetnames == [
        "Đơn vị",
        "Tiêu chí",
        "Yếu tố",
        "Xu hướng",
        "Phễu phản hồi",
        "Bất thường",
        "Ý kiến",
    ]
    expected = _json(["--period", "2026-W47"])

    units = book["Đơn vị"]
    assert [c.value for c in units[1]] == UNIT_HEADERS
    assert units.freeze_panes == "A2"
    assert units.max_row == 1 + len(expected)
    for line, row in enumerate(expected, start=2):
        cells = [c.value for c in units[line]]
        assert cells == unit_row(row)
        # numbers are numbers, percentages shown with 2 decimals
        assert cells[UNIT_HEADERS.index("Chỉ số SIPAS (%)")] == row["sipas_index"]
        assert cells[UNIT_HEADERS.index("Hồ sơ đã giải quyết")] == row["n_cases_closed"]
    sipas = units.cell(row=2, column=UNIT_HEADERS.index("Chỉ số SIPAS (%)") + 1)
    assert isinstance(sipas.value, float)
    assert sipas.number_format == PERCENT_FORMAT
    assert units.column_dimensions["B"].width >= len("Thành phố Hà Nội")

    by_unit = {row["agency_code"]: row for row in expected}
    criteria = list(book["Tiêu chí"].iter_rows(min_row=2, values_only=True))
    assert len(criteria) == sum(len(r["criteria"]) + len(r["integrity"]) for r in expected)
    for code, _name, criterion, criterion_label, index, n, low, high in criteria:
        cell = by_unit[str(code)]["criteria"][criterion]
        assert [index, n, [low, high]] == [cell["index"], cell["n"], cell["ci95"]]
        assert criterion_label == criterion_name(str(criterion))
    labels = {label for _c, _n, criterion, label, *_ in criteria if criterion == "overall"}
    assert labels == {"Hài lòng chung"}  # named as the pages name it, not by its code
    elements = list(book["Yếu tố"].iter_rows(min_row=2, values_only=True))
    assert len(elements) == len(expected) * len(ELEMENTS)
    for code, _name, element, _label, index, low, high in elements:
        row = by_unit[str(code)]
        assert index == row["elements"][element]
        assert [low, high] == (row["elements_ci95"][element] or [None, None])
    funnel = list(book["Phễu phản hồi"].iter_rows(min_row=2, values_only=True))
    channels = {"Tất cả": "all", "SMS": "sms", "Zalo": "zalo"}
    for code, _name, channel, *counts in funnel:
        assert counts == list(by_unit[str(code)]["funnel"][channels[str(channel)]].values())

    # trend by day: each day's figures are that day's `scores show`
    trend = list(book["Xu hướng"].iter_rows(min_row=2, values_only=True))
    day_rows = {row["agency_code"]: row for row in _json(["--period", "2026-11-20"])}
    for label, code, _name, sipas_index, overall, n_overall in trend:
        if label == "2026-11-20":
            row = day_rows[str(code)]
            assert (sipas_index, overall, n_overall) == (
                row["sipas_index"],
                row["overall_satisfaction"],
                row["n_overall"],
            )
    assert {t[0] for t in trend} <= {f"2026-11-{d}" for d in range(16, 23)}

    # the comment: masked, and its leading "=" neutralised so Excel shows it as text
    [comment] = list(book["Ý kiến"].iter_rows(min_row=2, values_only=True))
    text = str(comment[-1])
    assert text.startswith("'=HYPERLINK(")
    assert "0912345678" not in text
    cell = book["Ý kiến"].cell(row=2, column=6)
    assert cell.data_type == "s"


def test_trend_is_by_month_for_long_periods() -> None:
    labels = [p.label for p in trend_periods(parse_period("2026-Q4"))]
    assert labels == ["2026-10", "2026-11", "2026-12"]
    assert len(trend_periods(parse_period("2026-11"))) == 30


def test_export_refuses_an_unknown_agency(env: str, tmp_path: Path) -> None:  # noqa: F811
    args = ["export", "xlsx", "--period", "2026-11", "--out", str(tmp_path / "x.xlsx"), "--agency", "NOPE"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert "no agency with code 'NOPE'" in result.output
    assert not (tmp_path / "x.xlsx").exists()
