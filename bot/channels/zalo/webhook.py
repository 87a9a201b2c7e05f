"""What the two Zalo webhooks (bot/channels/zalo_bot, zalo_oa) share: the body limit, and the
store-then-answer step through bot.channels.intake, the path every channel webhook takes.

An accepted event is stored raw and encrypted, committed, and only then handed to the workers;
Zalo gets its 200 well within the 2 s it allows. A redelivered or replayed event answers 200
`{"status": "duplicate"}` and is not processed again. Only a failure to store answers 503.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from bot.bodies import read_limited
from bot.channels.intake import storage_unavailable, store_and_wake
from bot.channels.zalo.events import InboundRecord, NotAnEventError
from bot.context import CONTEXT, AppContext
from bot.errors import RefusedError

__all__ = ["MAX_EVENT_BYTES", "accept", "describe_or_refuse", "read_event_body"]

MAX_EVENT_BYTES = 64 * 1024


async def read_event_body(request: web.Request) -> bytes:
    """The body, or 413 as soon as it is known to exceed MAX_EVENT_BYTES (without reading it all)."""
    too_large = RefusedError(413, "payload_too_large", f"Zalo events are at most {MAX_EVENT_BYTES} bytes")
    return await read_limited(request, MAX_EVENT_BYTES, too_large)


def describe_or_refuse(describe: Callable[[Any], InboundRecord], payload: Any) -> InboundRecord:
    """The provider's name for the event, or 400 when the body is not an event."""
    try:
        return describe(payload)
    except NotAnEventError as exc:
        raise RefusedError(400, "not_an_event", str(exc)) from None


async def accept(request: web.Request, record: InboundRecord, raw: str) -> web.Response:
    """Store the event once (bot.channels.intake), then answer `stored` or `duplicate`; 503 when
    the database cannot take it (Zalo retries)."""
    ctx: AppContext = request.app[CONTEXT]
    try:
        stored = await store_and_wake(
            ctx, provider=record.provider, kind=record.kind, provider_id=record.provider_id, payload=raw,
            sender=record.sender,
        )  # fmt: skip
    except SQLAlchemyError as exc:
        return storage_unavailable(record.provider, exc)
    return web.json_response({"status": "duplicate" if stored.duplicate else "stored"})
