"""`sipas demo --sms-provider brandname`: the real processes (web, worker, cron) send the survey SMS
through the brandname simulator, its delivery callbacks settle them, and the citizen's replies
arrive as its signed MO callbacks."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from config.settings import PROJECT_ROOT
from tests.support.processes import SIPAS
from tests.support.services import redis_server_binary, require_or_skip

pytestmark = [pytest.mark.slow]


def test_the_demo_over_the_brandname_api(tmp_path: Path) -> None:
    require_or_skip(redis_server_binary() is not None, "no redis-server binary for the demo")
    workdir = tmp_path / "demo"
    done = subprocess.run(
        [SIPAS, "demo", "--workdir", str(workdir), "--sms-provider", "brandname"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "<- citizen (sms): khong" in output
    assert "-> SMS: Cam on Ong/Ba" in output
    assert (workdir / "phone.log").read_text(encoding="utf-8").count("SMS to 84987654321") == 8
    engine = create_engine(f"sqlite:///{workdir / 'demo.db'}")
    with engine.connect() as db:
        sms = db.execute(text("SELECT status, dlr_status FROM outbound_messages WHERE channel = 'sms'")).all()
        events = db.execute(
            text("SELECT kind, count(*) FROM inbound_events WHERE provider = 'brandname' GROUP BY kind")
        ).all()
    engine.dispose()
    # Every SMS delivered, by the simulator's callbacks (accepted, then delivered: two reports each).
    assert sms == [("delivered", 1)] * 8
    assert dict(events) == {"dlr": 16, "mo": 6}
