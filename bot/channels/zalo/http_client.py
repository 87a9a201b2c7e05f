"""What every Zalo API client shares: an httpx.AsyncClient that is either lent by the caller
(shared between clients; the caller closes it) or opened here and closed with the client."""

from __future__ import annotations

from types import TracebackType
from typing import Self

import httpx


class ZaloHttpClient:
    """Base of the Zalo API clients. Use `async with` (or await `close()`): a client opened here
    holds connections that must be released before its event loop ends."""

    def __init__(self, http: httpx.AsyncClient | None, timeout: float) -> None:
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(timeout=timeout)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns_http:
            await self._http.aclose()
