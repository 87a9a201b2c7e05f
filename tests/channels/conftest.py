"""The channel suites run the real app with every webhook configured (the secrets of
tests/security/webhook_client.py), so each adapter's own authentication is what is tested; a real
Kannel (tests/kannel/conftest.py) where the suite sends through one."""

from __future__ import annotations

import pytest

from config.settings import Settings
from tests.kannel.conftest import kannel, kannel_binaries, webhook_port
from tests.security.webhook_client import configured

__all__ = ["kannel", "kannel_binaries", "settings", "webhook_port"]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return configured(settings)
