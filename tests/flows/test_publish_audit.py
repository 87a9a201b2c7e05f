"""Publishing a flow, from `sipas flows publish` or the /flows page, is written to the audit log
once (flows.versions.publish); publishing the same content again while it is live is not."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from config.settings import PROJECT_ROOT, get_settings
from storage.audit import verify
from storage.models import AuditEntry
from tests.conftest import SECRET_KEY
from workers.cli import cli


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, db_url: str) -> Iterator[None]:
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("SIPAS_SECRET_KEY", SECRET_KEY)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_cli_publish_is_audited_once(env: None, tmp_path: Path, sessions: sessionmaker[Session]) -> None:
    source = (PROJECT_ROOT / "config" / "flows" / "sipas-sms.yaml").read_text(encoding="utf-8")
    edited = tmp_path / "sipas-sms.yaml"
    edited.write_text(source.replace("Cam on", "Xin cam on", 1), encoding="utf-8")
    for _ in range(2):
        result = CliRunner().invoke(cli, ["flows", "publish", str(edited), "--by", "lan"])
        assert result.exit_code == 0, result.output
    with sessions() as session:
        entries = session.scalars(select(AuditEntry).where(AuditEntry.action == "flows.publish")).all()
        assert [(e.actor, e.target, e.after) for e in entries] == [
            ("lan", "flow:sipas-sms", {"version": 1, "new": True, "scope": "default", "live_on": ["sms"]})
        ]
        assert verify(session) is None
