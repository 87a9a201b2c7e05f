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
        """Inbound events were stored and must be processed: called once per group of events
        stored together (bot.channels.event_writer), with the group's newest id."""

    def surveys_scheduled(self) -> None:
        """Accepted cases opened surveys: their first messages may be due at once (a case closed
        long enough ago), so the timer drain is woken instead of waiting for the cron sweep."""


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: one per process
class AppContext:
    settings: Settings
    sessions: sessionmaker[Session]
    vault: PhoneVault
    redis: Redis
    dispatcher: JobDispatcher


CONTEXT = web.AppKey("context", AppContext)
