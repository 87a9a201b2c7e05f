"""A process started without a setting it needs, or with an invalid one, stops at once with one
clear line per problem (contract.md, Configuration)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from config.settings import Settings
from tests.support.processes import SIPAS


def _run(command: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SIPAS, command],
        env={"PATH": "/usr/bin:/bin", **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("command", ["web", "worker", "cron"])
def test_missing_secret_stops_the_process(command: str, tmp_path: Path) -> None:
    done = _run(command, {}, tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "sipas: setting SIPAS_SECRET_KEY is required but empty (set it in the environment or .env)"
    ]


def test_web_names_its_own_required_settings(tmp_path: Path) -> None:
    done = _run("web", {"SIPAS_SECRET_KEY": "k" * 32}, tmp_path)
    assert done.returncode == 2
    assert "ONESTOP_WEBHOOK_SECRET" in done.stderr


def test_invalid_values_are_named_one_line_each(tmp_path: Path) -> None:
    done = _run("worker", {"SIPAS_SECRET_KEY": "short", "SIPAS_SEND_WINDOW": "21:00-07:00"}, tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("sipas: setting SIPAS_SECRET_KEY is invalid: ")
    assert "at least 16 characters" in lines[0]
    assert lines[1].startswith("sipas: setting SIPAS_SEND_WINDOW is invalid: ")


def test_weak_webhook_secrets_stop_the_web_outside_development(tmp_path: Path) -> None:
    weak = {"SIPAS_SECRET_KEY": "k" * 32, "ONESTOP_WEBHOOK_SECRET": "x", "KANNEL_MO_TOKEN": "short-token"}
    done = _run("web", weak, tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "ONESTOP_WEBHOOK_SECRET, KANNEL_MO_TOKEN must be at least 16 characters" in lines[0]
    assert "short-token" not in done.stderr  # the error names the settings, never their values


def test_development_accepts_short_secrets() -> None:
    relaxed = Settings(_env_file=None, SIPAS_ENV="development", KANNEL_MO_TOKEN="x")  # type: ignore[call-arg]
    assert relaxed.KANNEL_MO_TOKEN == "x"
    with pytest.raises(ValidationError):
        Settings(_env_file=None, ZALO_BOT_SECRET_TOKEN="x" * 15)  # type: ignore[call-arg]
    assert Settings(_env_file=None, ZALO_BOT_SECRET_TOKEN="x" * 16).SIPAS_ENV == "production"  # type: ignore[call-arg]
