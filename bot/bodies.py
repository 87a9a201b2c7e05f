"""Reading a request body under a hard size limit, for the webhooks that take small bodies from
outside (Kannel callbacks, Zalo events): an oversized body is refused without being read whole."""

from __future__ import annotations

from aiohttp import web

from bot.errors import RefusedError


async def read_limited(request: web.Request, max_bytes: int, too_large: RefusedError) -> bytes:
    """The body, or `too_large` raised as soon as it is known to exceed `max_bytes`: by its
    Content-Length, else while reading (a chunked body has none), never more than max_bytes + 1."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(max_bytes + 1 - size):
        size += len(chunk)
        if size > max_bytes:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)
