"""The one "store, then dispatch" path of every channel webhook.

A provider's view authenticates and parses its request, then hands the result here:

- `store_and_wake`: a citizen's message (or any event the worker will read): stored raw and
  encrypted with the keyed hash of its sender, committed, and only then the coalesced wake-up of
  the inbound drain job (workers.queues.wake through the app's JobDispatcher). A duplicate (the
  same provider id again: a provider retry) is not handed over a second time. A failed hand-over
  is only logged: the event is stored and the sweep of unprocessed events picks it up.
- `store_and_settle`: a delivery report: stored raw and applied to its outbox row with the
  neutral status (storage.outbox.Delivery) in the same transaction; nothing is queued.

`store_and_wake` hands its event to the process's grouped writer (bot.channels.event_writer): the
events of concurrent webhooks share one INSERT, one COMMIT and one wake-up, and each call returns
once its group is committed. `store_and_settle` runs its own transaction in a thread. Both raise
SQLAlchemyError when the database cannot take the event (or too many wait for it): the view
answers `storage_unavailable()` (503) so that the provider keeps the event and tries again. Only a
failure to store answers 5xx.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from weakref import WeakKeyDictionary

import structlog
from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from bot.channels.event_writer import EventWriter, Incoming
from bot.channels.sms import DeliveryReport
from bot.context import AppContext, JobDispatcher
from bot.errors import error_response
from storage import inbound, outbox
from storage.crypto import PhoneVault
from storage.inbound import NewEvent, Stored

__all__ = ["storage_unavailable", "store_and_settle", "store_and_wake", "store_and_wake_blocking"]

log = structlog.get_logger(__name__)

_MAX_OUTBOX_ID = 2**31 - 1  # larger refs cannot be one of our rows (and overflow an INTEGER key)

# One writer per context, i.e. per web process (tests build a context per app).
_WRITERS: WeakKeyDictionary[AppContext, EventWriter] = WeakKeyDictionary()


def writer_for(ctx: AppContext) -> EventWriter:
    """The process's grouped writer of `ctx`, made on first use."""
    writer = _WRITERS.get(ctx)
    if writer is None:
        writer = _WRITERS[ctx] = EventWriter(ctx.sessions, ctx.vault, ctx.dispatcher.inbound_received)
    return writer


async def store_and_wake(
    ctx: AppContext, *, provider: str, kind: str, provider_id: str, payload: str, sender: str | None
) -> Stored:
    """Store the event once per (provider, provider_id), committed; then wake the inbound drain.
    `payload` is the raw request as the worker will parse it again (encrypted here); `sender` is
    the citizen's normalised number or id (only its keyed hash is stored in clear)."""
    stored = await writer_for(ctx).submit(Incoming(provider, kind, provider_id, payload, sender))
    if stored.duplicate:
        log.info("inbound duplicate", provider=provider, kind=kind, event_id=stored.event_id)
    return stored


async def store_and_settle(ctx: AppContext, *, provider: str, report: DeliveryReport, payload: str) -> str:
    """Store a delivery report once and apply it to the outbox row it names, in one transaction
    of its own (never grouped: see bot.channels.event_writer). Returns what happened:
    "duplicate", "applied <status> (<provider's words>)" or "unknown message" (a report for a row
    we do not have is stored and answered 2xx: retrying cannot make it known)."""
    result = await asyncio.to_thread(_store_and_settle, ctx, provider, report, payload)
    log.info("delivery report", provider=provider, ref=report.ref, status=report.status.name, result=result)
    return result


def _store_and_settle(ctx: AppContext, provider: str, report: DeliveryReport, payload: str) -> str:
    now = datetime.now(UTC)
    event = NewEvent(provider, "dlr", report.provider_id, ctx.vault.encrypt(payload), None)
    with ctx.sessions() as session, session.begin():
        [stored] = inbound.store_events(session, [event], now)
        if stored.duplicate:
            return "duplicate"
        message_id = int(report.ref) if report.ref.isdigit() else 0
        known = 0 < message_id <= _MAX_OUTBOX_ID and outbox.apply_delivery_report(
            session, message_id, report.status, now, detail=report.detail
        )
        result = f"applied {report.status.name.lower()} ({report.detail})" if known else "unknown message"
        inbound.mark_processed(session, stored.event_id, result, now)
        return result


def storage_unavailable(provider: str, exc: SQLAlchemyError) -> web.Response:
    """The answer when the database cannot take the event: 503, the provider tries again."""
    log.error("webhook event not stored", provider=provider, error=type(exc).__name__)
    return error_response(503, "storage_unavailable", "cannot store the request now; retry later")


def store_and_wake_blocking(
    sessions: sessionmaker[Session],
    vault: PhoneVault,
    dispatcher: JobDispatcher,
    *,
    provider: str,
    kind: str,
    provider_id: str,
    payload: str,
    sender: str | None,
) -> Stored:
    """`store_and_wake` for callers without an app or an event loop (`sipas zalo poll`, the nightly
    rating reconciliation): one transaction that stores the event once, then, unless it is a
    duplicate, the hand-over. A failed hand-over is only logged (the sweep picks the event up)."""
    with sessions() as session, session.begin():
        stored = inbound.store_event(
            session,
            provider=provider,
            kind=kind,
            provider_id=provider_id,
            payload_enc=vault.encrypt(payload),
            sender_hash=vault.lookup_hash(sender) if sender else None,
        )
    if stored.duplicate:
        log.info("inbound duplicate", provider=provider, kind=kind, event_id=stored.event_id)
        return stored
    try:
        dispatcher.inbound_received(stored.event_id)
    except Exception as exc:  # stored and committed: the sweep of unprocessed events picks it up
        log.warning("inbound not dispatched; left for the sweep", provider=provider, kind=kind,
                    event_id=stored.event_id, error=type(exc).__name__)  # fmt: skip
    else:
        log.info("inbound stored", provider=provider, kind=kind, event_id=stored.event_id)
    return stored
