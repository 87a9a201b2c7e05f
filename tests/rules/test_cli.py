"""`sipas rules show|set|unset|import` on a real database, with the audit log it writes."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from config.settings import PROJECT_ROOT, get_settings
from storage.audit import verify
from storage.models import Agency, AgencyLevel, AuditEntry
from tests.conftest import SECRET_KEY
from workers.cli import cli

Invoke = Callable[..., Result]


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, db_url: str, sessions: sessionmaker[Session]) -> Iterator[Invoke]:
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("SIPAS_SECRET_KEY", SECRET_KEY)
    get_settings.cache_clear()
    with sessions() as session, session.begin():
        province = Agency(code="HN", name="UBND thành phố Hà Nội", level=AgencyLevel.PROVINCE)
        session.add(province)
        session.flush()
        session.add(Agency(code="HN-BD", name="UBND phường Ba Đình", level=AgencyLevel.COMMUNE,
                           parent_id=province.id))  # fmt: skip

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(cli, list(args), catch_exceptions=False)

    yield invoke
    get_settings.cache_clear()


def _shown(run: Invoke, code: str) -> dict[str, dict[str, object]]:
    result = run("rules", "show", code, "--format", "json")
    assert result.exit_code == 0, result.output
    return {row["rule"]: row for row in json.loads(result.output)}


def test_set_inherit_override_unset(run: Invoke, sessions: sessionmaker[Session]) -> None:
    assert run("rules", "set", "HN", "holidays", "2026-09-02,2026-09-01").exit_code == 0
    ward = _shown(run, "HN-BD")["holidays"]
    assert ward["value"] == ["2026-09-01", "2026-09-02"]
    assert ward["origin"] == "inherited from UBND thành phố Hà Nội (HN)"
    result = run("rules", "set", "HN-BD", "send_window", "08:00-17:00")
    assert "HN-BD send_window = 08:00-17:00 [set here]" in result.output
    assert _shown(run, "HN")["send_window"]["origin"] == "default: SIPAS_SEND_WINDOW"
    assert run("rules", "unset", "HN-BD", "send_window").exit_code == 0
    assert _shown(run, "HN-BD")["send_window"]["here"] is False

    table = run("rules", "show", "HN-BD").output
    assert "holidays" in table
    assert re.search(
        r"\nholidays +2026-09-01, 2026-09-02 +\[inherited from UBND thành phố Hà Nội \(HN\)\]", table
    )

    with sessions() as session:
        entries = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
        assert [(e.action, e.target) for e in entries] == [
            ("rules.set", "agency:HN:holidays"),
            ("rules.set", "agency:HN-BD:send_window"),
            ("rules.unset", "agency:HN-BD:send_window"),
        ]
        assert entries[2].before == {"send_window": "08:00-17:00"}
        assert entries[0].actor.startswith("cli:")
        assert verify(session) is None


def test_bad_value_and_unknown_rule_are_refused(run: Invoke) -> None:
    result = CliRunner().invoke(cli, ["rules", "set", "HN", "send_window", "22:00-06:00"])
    assert result.exit_code == 1
    assert "send_window: the send window must start before it ends" in result.output
    result = CliRunner().invoke(cli, ["rules", "set", "HN", "quiet", "1"])
    assert result.exit_code == 1
    assert "unknown rule 'quiet'" in result.output
    result = CliRunner().invoke(cli, ["rules", "show", "NOPE"])
    assert "'NOPE' is not in the registry" in result.output


def test_import_rules_and_the_channels_file(run: Invoke, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  HN:\n    sampling: 2\n  XX:\n    holidays: [2026-01-01]\n", encoding="utf-8")
    result = run("rules", "import", str(bad))
    assert result.exit_code == 1
    assert "0 set, 2 errors: nothing imported" in result.output
    assert _shown(run, "HN")["sampling"]["here"] is False

    good = tmp_path / "rules.yaml"
    good.write_text(
        "rules:\n  HN:\n    holidays: [2026-09-01, 2026-09-02]\n    sampling: {auto: {margin: 0.05}}\n"
        "  HN-BD:\n    reminder_after: 12h\n    desk_email: pakn@badinh.hanoi.gov.vn\n",
        encoding="utf-8",
    )
    assert "4 set, 0 unchanged, 0 errors" in run("rules", "import", str(good)).output
    assert "0 set, 4 unchanged, 0 errors" in run("rules", "import", str(good)).output
    ward = _shown(run, "HN-BD")
    assert ward["sampling"]["value"] == {"auto": {"margin": 0.05}}
    assert ward["reminder_after"]["value"] == 43200

    # The shipped channels file: its default goes onto the root unit, explicitly.
    shipped = PROJECT_ROOT / "config" / "agencies" / "channels.yaml"
    assert "5 set, 0 unchanged, 0 errors" in run("rules", "import", str(shipped)).output
    assert _shown(run, "HN")["channel.strategy"]["here"] is True
