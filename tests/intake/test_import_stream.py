"""`sipas cases import` streams its file in batches: bad rows (NUL bytes, JSON nested 10,000 deep,
times past the calendar's end) are reported with their line and never stop the good ones, a file
that is not UTF-8 is refused before anything is stored, and decisions across batches are those of
one batch (a citizen twice in the file is asked once)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from config.settings import get_settings
from storage.models import Case
from tests.conftest import SECRET_KEY
from tests.intake.conftest import case, counts
from workers.cli import cases as cases_cli
from workers.cli import cli

Invoke = Callable[..., Result]


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, db_url: str, redis_url: str) -> Iterator[Invoke]:
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("SIPAS_SECRET_KEY", SECRET_KEY)
    get_settings.cache_clear()
    yield lambda *args: CliRunner().invoke(cli, list(args), catch_exceptions=False)
    get_settings.cache_clear()


def stored(sessions: sessionmaker[Session]) -> set[str]:
    with sessions() as session:
        return set(session.scalars(select(Case.case_id)))


def test_bad_json_lines_are_reported_and_the_good_ones_imported(
    run: Invoke, sessions: sessionmaker[Session], registry: dict[str, int], tmp_path: Path
) -> None:
    lines = [
        json.dumps(case(case_id="G1", phone="0912000001")),
        "[" * 10_000 + "]" * 10_000,
        json.dumps(case(case_id="BAD-NUL", procedure_name="a\x00b")),
        json.dumps(case(case_id="BAD-TIME", due_at="9999-12-31T23:59:59-14:00")),
        json.dumps(case(case_id="BAD-\ud800")),
        json.dumps(case(case_id="G2", phone="0912000002")),
    ]
    path = tmp_path / "cases.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run("cases", "import", str(path))
    assert result.exit_code == 1
    assert "line 2: rejected: not valid JSON" in result.stderr
    assert "line 3 (case BAD-NUL): rejected: procedure_name: must not contain control characters" in (
        result.stderr
    )
    assert "line 4 (case BAD-TIME): rejected: due_at: must lie between 2000 and 2100" in result.stderr
    assert "line 5: rejected: case_id: must not contain control characters" in result.stderr
    assert result.stdout.strip().endswith("6 cases: 2 scheduled, 4 rejected")
    assert stored(sessions) == {"G1", "G2"}


def test_a_nul_byte_in_a_csv_line_rejects_that_line_only(
    run: Invoke, sessions: sessionmaker[Session], registry: dict[str, int], tmp_path: Path
) -> None:
    good = case()
    header = ",".join(good)
    row = ",".join(str(value) for value in good.values())
    path = tmp_path / "cases.csv"
    lines = [
        header,
        row.replace(good["case_id"], "C1"),
        row.replace(good["case_id"], "C\x002"),
        row.replace(good["case_id"], "C3").replace("0912345678", "0912345679"),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run("cases", "import", str(path))
    assert result.exit_code == 1
    assert "line 3: rejected: " in result.stderr
    assert result.stdout.strip().endswith("3 cases: 2 scheduled, 1 rejected")
    assert stored(sessions) == {"C1", "C3"}


def test_a_file_that_is_not_utf8_stores_nothing(
    run: Invoke, sessions: sessionmaker[Session], registry: dict[str, int], tmp_path: Path
) -> None:
    path = tmp_path / "cases.jsonl"
    lines = [json.dumps(case(case_id=f"U{n}", phone=f"09120000{n:02d}")) for n in range(3)]
    path.write_bytes(("\n".join(lines) + "\n").encode() + b'{"case_id": "Caf\xe9"}\n')
    result = run("cases", "import", str(path))
    assert result.exit_code == 1
    assert "not UTF-8 text" in result.output
    assert counts(sessions) == {"cases": 0, "surveys": 0, "timers": 0}


def test_batches_decide_as_one_batch_would(
    run: Invoke,
    sessions: sessionmaker[Session],
    registry: dict[str, int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Batches of 2: the same citizen in batch 1 and batch 3 is asked once; a case_id repeated
    across batches is a duplicate; the progress bar and summary count every line."""
    monkeypatch.setattr(cases_cli, "BATCH_SIZE", 2)
    rows = [
        case(case_id="B1", phone="0912000001"),
        case(case_id="B2", phone="0912000002"),
        case(case_id="B3", phone="0912000003"),
        case(case_id="B1", phone="0912000001"),
        case(case_id="B5", phone="0912000001"),
    ]
    path = tmp_path / "cases.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    result = run("cases", "import", str(path))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith("5 cases: 3 scheduled, 1 duplicate, 1 frequency_capped")
    assert counts(sessions) == {"cases": 4, "surveys": 3, "timers": 3}
