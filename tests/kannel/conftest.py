"""Fixtures for the SMS channel: a real Kannel (the web app and its dispatcher: tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.kannel import KannelBinaries, KannelHarness, ensure_kannel
from tests.support.services import free_port, require_or_skip


@pytest.fixture(scope="session")
def kannel_binaries() -> KannelBinaries:
    binaries = ensure_kannel()
    require_or_skip(
        binaries is not None,
        "Kannel is not installed and cannot be installed here (apt-get install kannel kannel-extras as root)",
    )
    assert binaries is not None
    return binaries


@pytest.fixture
def webhook_port() -> int:
    """Where the tests run our web app; Kannel's sms-service and dlr-urls point here."""
    return free_port()


@pytest.fixture
def kannel(kannel_binaries: KannelBinaries, webhook_port: int, tmp_path: Path) -> Iterator[KannelHarness]:
    """A fresh Kannel per test: callbacks Kannel still retries never reach another test."""
    with KannelHarness(
        kannel_binaries, tmp_path / "kannel", webhook_base=f"http://127.0.0.1:{webhook_port}"
    ) as harness:
        yield harness
