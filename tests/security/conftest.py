"""Fixtures shared with the channel suites: a real Kannel and the Zalo simulator."""

from __future__ import annotations

from tests.kannel.conftest import kannel, kannel_binaries, webhook_port
from tests.zalo.conftest import sim_config, zalo_sim

__all__ = ["kannel", "kannel_binaries", "sim_config", "webhook_port", "zalo_sim"]
