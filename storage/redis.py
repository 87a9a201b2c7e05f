"""Redis connections (one client per URL per process)."""

from __future__ import annotations

from functools import lru_cache

from redis import Redis


@lru_cache(maxsize=8)
def redis_for(url: str) -> Redis:
    """A client for RQ, wake-up flags and counters; RQ needs raw bytes, so no decoding here."""
    return Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5, health_check_interval=30)
