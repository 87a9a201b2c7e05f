"""The faults suite runs the service as the Procfile does (real processes, PostgreSQL when
configured, Redis, Kannel): the end-to-end service fixture, reused."""

from __future__ import annotations

from tests.e2e.conftest import service, service_env

__all__ = ["service", "service_env"]
