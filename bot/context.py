"""What every request handler needs, built once per process and stored on the app."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from aiohttp import web
from redis import Redis
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from storage.crypto import PhoneVault


class JobDispatcher(Protocol):
    """Hands stored work to the background workers. The web process never imports the workers:
    the process that builds the app passes an implementation in (see workers.dispatch)."""

    def inbound_received(self, event_id: int) -> None:
        """An inbound event was stored and must be processed."""


@dataclass(frozen=True)
class AppContext:
    settings: Settings
    sessions: sessionmaker[Session]
    vault: PhoneVault
    redis: Redis
    dispatcher: JobDispatcher


CONTEXT = web.AppKey("context", AppContext)
