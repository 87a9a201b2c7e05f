"""A TokenStore for several processes: the pair lives encrypted in the database, refreshes are
serialised by a Redis lock.

The lock is a plain redis-py lock with a TTL, so a refresher that dies cannot block the others
for longer than LOCK_TTL_SECONDS. It is acquired and released in worker threads (blocking Redis
calls stay off the event loop), hence `thread_local=False`: the thread that releases need not be
the one that acquired.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import structlog
from redis import Redis
from redis.exceptions import LockError
from sqlalchemy.orm import Session, sessionmaker

from bot.channels.zalo.exceptions import ZaloServerError
from bot.channels.zalo.tokens import OATokens
from storage.crypto import PhoneVault
from storage.zalo_tokens import load_oa_token, save_oa_token

__all__ = ["LOCK_TTL_SECONDS", "DatabaseTokenStore"]

log = structlog.get_logger(__name__)

LOCK_TTL_SECONDS = 60
LOCK_WAIT_SECONDS = 30


class DatabaseTokenStore:
    """bot.channels.zalo.tokens.TokenStore over the `zalo_oa_tokens` table and a Redis lock."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        vault: PhoneVault,
        redis: Redis,
        app_id: str,
        *,
        lock_wait: float = LOCK_WAIT_SECONDS,
    ) -> None:
        if not app_id:
            raise ValueError("an OA app id is required")
        self._sessions = sessions
        self._vault = vault
        self._redis = redis
        self._app_id = app_id
        self._lock_wait = lock_wait
        self.lock_name = f"sipas:zalo:oa-token-refresh:{app_id}"

    def _load(self) -> OATokens | None:
        with self._sessions() as session:
            row = load_oa_token(session, self._app_id)
            if row is None:
                return None
            return OATokens(
                access_token=self._vault.decrypt(row.access_token_enc),
                refresh_token=self._vault.decrypt(row.refresh_token_enc),
                expires_at=row.expires_at,
            )

    def _save(self, tokens: OATokens) -> None:
        with self._sessions() as session, session.begin():
            save_oa_token(
                session,
                self._app_id,
                access_token_enc=self._vault.encrypt(tokens.access_token),
                refresh_token_enc=self._vault.encrypt(tokens.refresh_token),
                expires_at=tokens.expires_at,
            )

    async def load(self) -> OATokens | None:
        return await asyncio.to_thread(self._load)

    async def save(self, tokens: OATokens) -> None:
        """Committed when this returns: a crash after it cannot lose the new refresh token."""
        await asyncio.to_thread(self._save, tokens)

    @asynccontextmanager
    async def _locked(self) -> AsyncIterator[None]:
        lock = self._redis.lock(self.lock_name, timeout=LOCK_TTL_SECONDS, thread_local=False)
        acquired = await asyncio.to_thread(lock.acquire, blocking=True, blocking_timeout=self._lock_wait)
        if not acquired:
            raise ZaloServerError("another process is refreshing the OA token; retry later", method="oauth")
        try:
            yield
        finally:
            try:
                await asyncio.to_thread(lock.release)
            except LockError:  # held past its TTL: another process may already hold it; say so
                log.warning("zalo_token_lock_expired", lock=self.lock_name)

    def refresh_lock(self) -> AbstractAsyncContextManager[None]:
        return self._locked()
