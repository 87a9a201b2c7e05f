"""Everything a job needs, built once per worker process from the settings."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from redis import Redis
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings, get_settings
from storage.crypto import PhoneVault
from storage.db import session_factory
from storage.redis import redis_for


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    sessions: sessionmaker[Session]
    vault: PhoneVault
    redis: Redis

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        settings.require("SIPAS_SECRET_KEY")
        return cls(
            settings=settings,
            sessions=session_factory(settings.DATABASE_URL),
            vault=PhoneVault.from_settings(settings),
            redis=redis_for(settings.REDIS_URL),
        )


@lru_cache(maxsize=1)
def get_runtime() -> Runtime:
    """The worker process's runtime (RQ job functions take ids, not objects)."""
    return Runtime.build(get_settings())
