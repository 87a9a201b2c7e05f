"""`sipas demo` plays its three citizens to the end and stops everything it started; with `--keep`
it stays up until interrupted."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from config.settings import PROJECT_ROOT
from tests.support.processes import SIPAS
from tests.support.services import redis_server_binary, require_or_skip

pytestmark = [pytest.mark.slow]


def _start(tmp_path: Path, *extra: str) -> subprocess.Popen[str]:
    require_or_skip(redis_server_binary() is not None, "no redis-server binary for the demo")
    return subprocess.Popen(
        [SIPAS, "demo", "--workdir", str(tmp_path / "demo"), *extra],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_demo_plays_three_citizens_and_cleans_up(tmp_path: Path) -> None:
    proc = _start(tmp_path)
    output, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, output
    assert "survey code" in output  # the ZNS rating with the start code
    assert "-> Zalo bot: Cảm ơn Ông/Bà" in output
    assert "Zalo account does not exist (code -118)" in output
    assert "-> SMS: Cam on Ong/Ba" in output
    assert "-> Zalo OA: Cảm ơn Ông/Bà" in output
    assert '"expired": false' in output  # the OA token was refreshed once it expired
    assert "HN-P-PHUONG-LIET" in output  # the scores table
    assert output.rstrip().endswith("Demo finished; everything it started is stopped.")
    assert (tmp_path / "demo" / "phone.log").read_text(encoding="utf-8").count("SMS to 84987654321") == 8


def test_demo_keep_stays_up_until_interrupted(tmp_path: Path) -> None:
    proc = _start(tmp_path, "--keep")
    assert proc.stdout is not None
    lines: list[str] = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("Still running"):
            break
    assert any(line.startswith("Still running") for line in lines), "".join(lines)
    assert (tmp_path / "demo" / "demo.env").is_file()
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, rest
    assert "Demo finished" in rest
