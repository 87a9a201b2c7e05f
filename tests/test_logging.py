"""Logs never carry a phone number in clear, whoever logs it."""

from __future__ import annotations

import json
import logging

import pytest
import structlog

from config.logging import configure_logging, mask_phones


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("0912345678", "***678"),
        ("call +84 912 345 678 now", "call ***678 now"),
        ("84912345678", "***678"),
        ("0912.345.678", "***678"),
        ("old 01651234567", "old ***567"),
        ("case H01.40-261120-0001 on 2026-11-20", "case H01.40-261120-0001 on 2026-11-20"),
    ],
)
def test_mask_phones(text: str, masked: str) -> None:
    assert mask_phones(text) == masked


def test_json_log_lines_are_masked(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO")
    try:
        structlog.get_logger("t").info("reply from 0912345678", sender="+84912345678", n=1)
        logging.getLogger("lib").warning("library says %s", "84987654321")
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    finally:
        logging.getLogger().handlers.clear()
        structlog.reset_defaults()
    assert lines[0]["event"] == "reply from ***678"
    assert lines[0]["sender"] == "***678"
    assert lines[0]["n"] == 1
    assert lines[1]["event"] == "library says ***321"
    assert "0912345678" not in json.dumps(lines)
