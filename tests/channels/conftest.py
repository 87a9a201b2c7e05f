"""The channel suites run the real app with every webhook configured (the secrets of
tests/security/webhook_client.py), so each adapter's own authentication is what is tested."""

from __future__ import annotations

import pytest

from config.settings import Settings
from tests.security.webhook_client import configured


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return configured(settings)
