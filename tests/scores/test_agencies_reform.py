"""The 2025 registry: validity and successors imported (and audited), past scores readable, and a
new ward's figures able to start from its predecessors' counts."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from sqlalchemy import select

from config.settings import PROJECT_ROOT
from storage.db import session_factory, transaction
from storage.models import Agency, AuditEntry
from tests.scores.factories import surveyed_case
from tests.scores.test_cli_and_tasks import env  # noqa: F401  (fixture)
from workers.cli import cli

REGISTRY = PROJECT_ROOT / "config" / "agencies" / "ha-noi.yaml"
VN = timezone(timedelta(hours=7))


def _cli(*args: str) -> Any:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result


def test_shipped_registry_imports_with_validity_and_successors(env: str) -> None:  # noqa: F811
    first = _cli("agencies", "import", str(REGISTRY))
    assert first.stdout.strip().endswith("0 updated, 0 unchanged, 0 errors")
    with session_factory(env)() as s:
        units = {a.code: a for a in s.scalars(select(Agency))}
        actions = s.scalars(select(AuditEntry.action).where(AuditEntry.target == "agency:HN-TX-HD")).all()
    assert units["HN-P-KHUONG-DINH"].valid_from == date(2025, 7, 1)
    assert units["HN-TX-HD"].valid_to == date(2025, 6, 30)
    assert units["HN-TX-HD"].successor_id == units["HN-P-KHUONG-DINH"].id
    assert units["HN-TTPVHCC-CN01"].parent_id == units["HN-TTPVHCC"].id
    current = [a for a in units.values() if a.valid_to is None and a.level.value == "district"]
    assert current == []  # no district level in the current registry
    assert list(actions) == ["agencies.add", "agencies.update"]  # created, then its successor set
    again = _cli("agencies", "import", str(REGISTRY))
    assert again.stdout.strip().endswith("0 created, 0 updated, 35 unchanged, 0 errors")
    listed = _cli("agencies", "list").stdout
    assert "HN-TX-HD  UBND phường Hạ Đình (commune, until 2025-06-30, → HN-P-KHUONG-DINH)" in listed
    assert "HN-P-KHUONG-DINH  UBND phường Khương Đình (commune, from 2025-07-01)" in listed


def test_bad_validity_rows_are_refused(env: str, tmp_path: Path) -> None:  # noqa: F811
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "code,name,parent_code,level,valid_from,valid_to,successor_code\n"
        "A,Xã A,,commune,2025-07-01,2025-06-30,\n"
        "B,Xã B,,commune,1/7/2025,,\n"
        "C,Xã C,,commune,,,NOPE\n"
        "D,Xã D,,commune,,,D\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(cli, ["agencies", "import", str(bad)])
    assert result.exit_code == 1
    assert "line 2: valid_to 2025-06-30 is before valid_from 2025-07-01" in result.output
    assert "line 3: valid_from must be a date YYYY-MM-DD (got '1/7/2025')" in result.output
    assert "line 4: successor_code 'NOPE' of 'C' is neither in the file nor in the registry" in result.output
    assert "line 5: successor_code cannot be the agency itself" in result.output


def test_merged_units_stay_readable_and_fold_into_their_successor(env: str) -> None:  # noqa: F811
    # Hạ Đình (closed 2025-06-30) answered 5 and 4 in June; Khương Đình (new) 2 and 5 in July.
    _cli("agencies", "import", str(REGISTRY))
    with transaction(env) as s:
        units = {a.code: a for a in s.scalars(select(Agency))}
        for day, value in ((10, 5), (11, 4)):
            surveyed_case(s, units["HN-TX-HD"], datetime(2025, 6, day, 9, tzinfo=VN), {"overall": value})
        for day, value in ((10, 2), (11, 5)):
            surveyed_case(
                s, units["HN-P-KHUONG-DINH"], datetime(2025, 7, day, 9, tzinfo=VN), {"overall": value}
            )
    _cli("scores", "compute", "--from", "2025-06-01", "--to", "2025-07-31")
    plain = json.loads(_cli("scores", "show", "--period", "2025-06..2025-07", "--format", "json").stdout)
    by_code = {row["agency_code"]: row for row in plain}
    assert by_code["HN-TX-HD"]["overall_satisfaction"] == 100.0  # the past stays readable
    assert by_code["HN-TX-HD"]["valid_to"] == "2025-06-30"
    assert by_code["HN-TX-HD"]["successor_code"] == "HN-P-KHUONG-DINH"
    assert by_code["HN-P-KHUONG-DINH"]["overall_satisfaction"] == 50.0
    folded = json.loads(
        _cli(
            "scores", "show", "--period", "2025-06..2025-07", "--format", "json", "--with-predecessors"
        ).stdout
    )
    codes = {row["agency_code"]: row for row in folded}
    assert "HN-TX-HD" not in codes
    assert "HN-TX" not in codes
    assert codes["HN-P-KHUONG-DINH"]["n_overall"] == 4
    assert codes["HN-P-KHUONG-DINH"]["overall_satisfaction"] == 75.0  # 3 of 4
    june = json.loads(
        _cli(
            "scores",
            "show",
            "--period",
            "2025-06",
            "--agency",
            "HN-P-KHUONG-DINH",
            "--format",
            "json",
            "--with-predecessors",
        ).stdout
    )
    assert june[0]["overall_satisfaction"] == 100.0  # its trend starts before it existed
