"""OA access tokens: where they are kept and how they are refreshed.

Zalo's refresh token is single-use and replaced at every refresh. Two processes refreshing with
the same refresh token would leave one of them with a dead token, and a new refresh token that is
used before it is saved is lost if the process dies. So a refresh always:

1. takes the store's refresh lock (one refresher at a time),
2. re-reads the tokens: if another refresher already replaced the stale access token, uses theirs,
3. calls the OAuth server, then saves the new pair BEFORE anyone uses the new access token.

`TokenStore` is the seam: `InMemoryTokenStore` serves one process (tests, development); a
database-backed store with a Redis lock serves several.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import httpx

from bot.channels.zalo.exceptions import ZaloServerError, ZaloTokenInvalid, ZaloTokenRefreshError
from bot.channels.zalo.types import OATokenGrant

__all__ = ["DEFAULT_OAUTH_BASE", "InMemoryTokenStore", "OATokenManager", "OATokens", "TokenStore"]

DEFAULT_OAUTH_BASE = "https://oauth.zaloapp.com"
# Refresh a little before the announced expiry so a call never starts with a dying token.
EXPIRY_MARGIN = timedelta(minutes=5)


@dataclass(frozen=True)
class OATokens:
    access_token: str
    refresh_token: str
    expires_at: datetime

    def expired(self, now: datetime | None = None) -> bool:
        return (now or datetime.now(UTC)) >= self.expires_at - EXPIRY_MARGIN


class TokenStore(Protocol):
    """Keeps the current OA token pair and serialises refreshes."""

    async def load(self) -> OATokens | None:
        """The current pair, or None when the OA was never authorised."""

    async def save(self, tokens: OATokens) -> None:
        """Persist a new pair durably (called before the new access token is used)."""

    def refresh_lock(self) -> AbstractAsyncContextManager[None]:
        """Held while refreshing, so only one refresher talks to the OAuth server at a time."""


class InMemoryTokenStore:
    """A TokenStore for one process (tests, `sipas zalo` commands in development)."""

    def __init__(self, tokens: OATokens | None = None) -> None:
        self._tokens = tokens
        self._lock = asyncio.Lock()
        self.saved: list[OATokens] = []

    async def load(self) -> OATokens | None:
        return self._tokens

    async def save(self, tokens: OATokens) -> None:
        self._tokens = tokens
        self.saved.append(tokens)

    @asynccontextmanager
    async def _locked(self) -> AsyncIterator[None]:
        async with self._lock:
            yield

    def refresh_lock(self) -> AbstractAsyncContextManager[None]:
        return self._locked()


class OATokenManager:
    """Hands out a valid access token and refreshes it through the OAuth v4 endpoint."""

    def __init__(
        self,
        store: TokenStore,
        *,
        http: httpx.AsyncClient,
        oauth_base: str,
        app_id: str,
        app_secret: str,
    ) -> None:
        self._store = store
        self._http = http
        self._url = f"{oauth_base.rstrip('/')}/v4/oa/access_token"
        self._app_id = app_id
        self._app_secret = app_secret

    async def access_token(self) -> str:
        """A usable access token, refreshed first if the stored one has expired."""
        tokens = await self._store.load()
        if tokens is None:
            raise ZaloTokenInvalid("the OA has no stored token: authorise it first", method="oauth")
        if tokens.expired():
            tokens = await self.refresh(tokens.access_token)
        return tokens.access_token

    async def refresh(self, stale_access_token: str) -> OATokens:
        """Replace `stale_access_token`, unless another refresher already did."""
        async with self._store.refresh_lock():
            current = await self._store.load()
            if current is None:
                raise ZaloTokenInvalid("the OA has no stored token: authorise it first", method="oauth")
            if current.access_token != stale_access_token and not current.expired():
                return current
            grant = await self._grant(current.refresh_token)
            fresh = OATokens(
                access_token=grant.access_token,
                refresh_token=grant.refresh_token,
                expires_at=datetime.now(UTC) + timedelta(seconds=grant.expires_in),
            )
            await self._store.save(fresh)
            return fresh

    async def _grant(self, refresh_token: str) -> OATokenGrant:
        try:
            response = await self._http.post(
                self._url,
                headers={"secret_key": self._app_secret},
                data={"refresh_token": refresh_token, "app_id": self._app_id, "grant_type": "refresh_token"},
            )
        except httpx.HTTPError as exc:
            raise ZaloServerError(f"OAuth server unreachable: {type(exc).__name__}", method="oauth") from exc
        if response.status_code >= 500:
            raise ZaloServerError("OAuth server error", code=response.status_code, method="oauth")
        try:
            body = response.json()
        except ValueError:
            raise ZaloServerError(
                "OAuth answer is not JSON", code=response.status_code, method="oauth"
            ) from None
        if not isinstance(body, dict) or "access_token" not in body:
            error = body.get("error") if isinstance(body, dict) else None
            reason = (
                body.get("error_description") or body.get("error_reason") or body.get("message")
                if isinstance(body, dict)
                else None
            )
            raise ZaloTokenRefreshError(
                str(reason or "refresh refused"),
                code=error if isinstance(error, int) else response.status_code,
                method="oauth",
            )
        return OATokenGrant.model_validate(body)
