"""The one "store, then dispatch" path of every channel webhook.

A provider's view authenticates and parses its request, then hands the result here:

- `store_and_wake`: a citizen's message (or any event the worker will read): stored raw and
  encrypted with the keyed hash of its sender, committed, and only then the coalesced wake-up of
  the inbound drain job (workers.queues.wake through the app's JobDispatcher). A duplicate (the
  same provider id again: a provider retry) is not handed over a second time. A failed hand-over
  is only logged: the event is stored and the sweep of unprocessed events picks it up.
- `store_and_settle`: a delivery report: stored raw and applied to its outbox row with the
  neutral status (storage.outbox.Delivery) in the same transaction; nothing is queued.

Both hand their event to one of the process's grouped writers (bot.channels.event_writer): the
events of concurrent webhooks share one INSERT and one COMMIT (the MOs one wake-up, the reports
one locking read and one write of their outbox rows), and each call returns once its group is
committed. Both raise SQLAlchemyError when the database cannot take the event (or too many wait
for it): the view answers `storage_unavailable()` (503) so that the provider keeps the event and
tries again. Only a failure to store answers 5xx.
"""

from __future__ import annotations

from weakref import WeakKeyDictionary

import structlog
from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from bot.channels.event_writer import EventWriter, Incoming, IncomingReport, ReportWriter
from bot.channels.sms import DeliveryReport
from bot.context import AppContext, JobDispatcher
from bot.errors import error_response
from storage import inbound
from storage.crypto import PhoneVault
from storage.inbound import Stored

__all__ = ["storage_unavailable", "store_and_settle", "store_and_wake", "store_and_wake_blocking"]

log = structlog.get_logger(__name__)


# The writers of each context, i.e. of each web process (tests build a context per app).
_WRITERS: WeakKeyDictionary[AppContext, tuple[EventWriter, ReportWriter]] = WeakKeyDictionary()


def writers_for(ctx: AppContext) -> tuple[EventWriter, ReportWriter]:
    """The process's grouped writers of `ctx` (events, delivery reports), made on first use."""
    writers = _WRITERS.get(ctx)
    if writers is None:
        writers = _WRITERS[ctx] = (
            EventWriter(ctx.sessions, ctx.vault, ctx.dispatcher.inbound_received),
            ReportWriter(ctx.sessions, ctx.vault),
        )
    return writers


async def store_and_wake(
    ctx: AppContext, *, provider: str, kind: str, provider_id: str, payload: str, sender: str | None
) -> Stored:
    """Store the event once per (provider, provider_id), committed; then wake the inbound drain.
    `payload` is the raw request as the worker will parse it again (encrypted here); `sender` is
    the citizen's normalised number or id (only its keyed hash is stored in clear)."""
    stored = await writers_for(ctx)[0].submit(Incoming(provider, kind, provider_id, payload, sender))
    if stored.duplicate:
        log.info("inbound duplicate", provider=provider, kind=kind, event_id=stored.event_id)
    return stored


async def store_and_settle(ctx: AppContext, *, provider: str, report: DeliveryReport, payload: str) -> str:
    """Store a delivery report once and apply it to the outbox row it names, in the transaction
    of its group (bot.channels.event_writer.write_reports). Returns what happened: "duplicate",
    "applied <status> (<provider's words>)" or "unknown message" (a report for a row we do not
    have is stored and answered 2xx: retrying cannot make it known)."""
    result = await writers_for(ctx)[1].submit(IncomingReport(provider, report, payload))
    log.info("delivery report", provider=provider, ref=report.ref, status=report.status.name, result=result)
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
