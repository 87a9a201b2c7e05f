"""Zalo events in the inbound job: a router (bot.channels.zalo.router, aiogram style, synchronous)
whose handlers turn one stored Bot Platform or OA/ZNS event into answers, links and replies.

workers.inbound locks the stored event and calls `process_zalo_event` inside its transaction; the
handlers do their database work in that same transaction, so the event is marked processed
together with what it caused (a retried job finds it processed and does nothing).

Bot Platform (the citizen writes first):
- text from a chat linked to an active survey -> the reply goes through the survey's flow;
- text holding a start code of an open survey -> the chat is linked and the survey continues on
  the bot (flows.zalo_survey.link_chat); a wrong code is answered, and after MAX_CODE_ATTEMPTS
  wrong codes in a day the chat is told to wait (no guessing other citizens' codes);
- anything else from an unknown chat -> a greeting that asks for the code;
- `message.unsupported.received` (a protected account: we cannot read the text) -> a short
  explanation; when the chat's survey can move to SMS it does, and the citizen is told so;
- images and stickers -> "please answer in words or digits".

Official Account: `user_send_text` from the user of an active OA survey is a reply; other text
(an OA is the agency's general account) goes to the unit's inbox for its staff, and the user gets
the inbox's automatic reply at most once a day (flows.inbox);
`user_feedback` is a ZNS rating (matched by msg_id, then tracking_id = survey id);
`user_received_message` marks our message delivered (or settles the one `unknown` send it can
be about, storage.outbox.settle_zalo_receipt); follow/unfollow only count as interactions
(workers.zalo_window).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.channels import registry, zalo_bot, zalo_oa
from bot.channels.zalo import texts
from bot.channels.zalo.filters import EventName
from bot.channels.zalo.router import UNHANDLED, Dispatcher, Router
from bot.channels.zalo.types import BotEventName, BotUpdate, OAEvent, OAEventName, validation_summary
from flows.inbox import receive as receive_in_inbox
from flows.routes import find_start_codes
from flows.survey import record_opt_out
from flows.understanding import Keyword, ReplyKind, parse_reply
from flows.zalo_survey import (
    Rating,
    fall_back_to_sms,
    find_by_code,
    find_conversation,
    handle_zalo_reply,
    link_chat,
    record_rating,
)
from storage.models import Channel, InboundEvent, OutboundMessage, OutboxStatus, Route, SurveyStatus
from storage.outbox import add_message, settle_zalo_receipt
from workers.runtime import Runtime

__all__ = ["MAX_CODE_ATTEMPTS", "ZALO_PROVIDERS", "process_zalo_event", "router"]

log = structlog.get_logger(__name__)

ZALO_PROVIDERS = frozenset(registry.ZALO)
MAX_CODE_ATTEMPTS = 10
CODE_ATTEMPT_WINDOW_SECONDS = 24 * 3600

Handled = tuple[str, list[int]]


@dataclass(frozen=True)
class InboundContext:
    """What every handler needs: the job's runtime and transaction, the stored event, the time."""

    runtime: Runtime
    session: Session
    event: InboundEvent
    now: datetime


router = Router(name="sipas-zalo")


def process_zalo_event(runtime: Runtime, session: Session, event: InboundEvent, now: datetime) -> Handled:
    """Run one stored Zalo event through the router; (what happened, outbox ids to send)."""
    ctx = InboundContext(runtime, session, event, now)
    try:
        payload = runtime.vault.decrypt(event.payload_enc)
        parsed: BotUpdate | OAEvent = (
            zalo_bot.read_update(payload) if event.provider == zalo_bot.NAME else zalo_oa.read_event(payload)
        )
    except (ValidationError, json.JSONDecodeError) as exc:
        # Stored because it was authentic; unusable all the same. Say why (never the input: it holds
        # user ids and texts), do not retry forever.
        why = validation_summary(exc) if isinstance(exc, ValidationError) else f"not JSON: {exc.msg}"
        log.warning("zalo event unreadable", event_id=event.id, kind=event.kind, error=why)
        return f"unreadable {event.kind}", []
    if isinstance(parsed, BotUpdate):
        handled: Any = _dispatcher.feed_bot_update(parsed, ctx=ctx)
    else:
        handled = _dispatcher.feed_oa_event(parsed, ctx=ctx)
    if handled is UNHANDLED:
        return f"ignored {event.provider}/{event.kind}", []
    result: Handled = handled
    return result


def _bot_notice(ctx: InboundContext, chat_id: str, text: str) -> list[int]:
    """A bot message outside any survey flow (greeting, code answers): one per event."""
    message = add_message(
        ctx.session,
        dedupe_key=f"zalo-bot:in:{ctx.event.id}:0",
        channel=Channel.ZALO,
        route=Route.ZALO_BOT,
        recipient_enc=ctx.runtime.vault.encrypt(chat_id),
        text=text,
    )
    return [message.id]


def _code_attempts_exceeded(ctx: InboundContext, sender_hash: str) -> bool:
    """Counts wrong codes per chat for a day; True once the chat has used up its attempts."""
    key = f"sipas:zalo:code-attempts:{sender_hash}"
    attempts = int(ctx.runtime.redis.incr(key))
    if attempts == 1:
        ctx.runtime.redis.expire(key, CODE_ATTEMPT_WINDOW_SECONDS)
    return attempts > MAX_CODE_ATTEMPTS


# --- Zalo Bot Platform ---------------------------------------------------------------------------


@router.message(EventName(BotEventName.TEXT))
def bot_text(update: BotUpdate, ctx: InboundContext) -> Handled:
    text, sender = update.text or "", ctx.event.sender_hash or ""
    survey = find_conversation(ctx.session, Route.ZALO_BOT, sender)
    if survey is not None and survey.status is SurveyStatus.ACTIVE:
        ids = handle_zalo_reply(ctx.session, survey, text, ctx.event.id, ctx.now)
        return f"survey {survey.id}", ids
    codes = find_start_codes(text)
    if codes:
        found = find_by_code(ctx.session, codes)
        if found is not None:
            chat_enc = ctx.runtime.vault.encrypt(update.chat_id)
            ids = link_chat(
                ctx.session,
                ctx.runtime.settings,
                found,
                Route.ZALO_BOT,
                chat_enc,
                sender,
                ctx.now,
            )
            return f"linked survey {found.id}", ids
        if _code_attempts_exceeded(ctx, sender):
            return "too many wrong codes", _bot_notice(ctx, update.chat_id, texts.TOO_MANY_CODES)
        return "unknown code", _bot_notice(ctx, update.chat_id, texts.CODE_NOT_FOUND.format(code=codes[0]))
    if survey is not None:
        return f"survey {survey.id} is over", []  # thanks were said; a chatty citizen costs nothing
    if parse_reply(text, ReplyKind.TEXT).keyword is not None:
        return "keyword without survey", []
    return "greeted", _bot_notice(ctx, update.chat_id, texts.WELCOME)


@router.message(EventName(BotEventName.UNSUPPORTED))
def bot_unsupported(update: BotUpdate, ctx: InboundContext) -> Handled:
    survey = find_conversation(ctx.session, Route.ZALO_BOT, ctx.event.sender_hash or "")
    if survey is not None and survey.status is SurveyStatus.ACTIVE:
        moved = fall_back_to_sms(
            ctx.session,
            ctx.runtime.settings,
            survey.id,
            "zalo bot: the citizen's messages are unreadable (message.unsupported.received)",
            ctx.now,
        )
        if moved:
            notice = _bot_notice(ctx, update.chat_id, texts.UNSUPPORTED_MOVED_TO_SMS)
            return f"survey {survey.id} moved to sms", [*notice, *moved]
    return "unsupported message explained", _bot_notice(ctx, update.chat_id, texts.UNSUPPORTED)


@router.message(EventName(BotEventName.IMAGE, BotEventName.STICKER))
def bot_not_text(update: BotUpdate, ctx: InboundContext) -> Handled:
    survey = find_conversation(ctx.session, Route.ZALO_BOT, ctx.event.sender_hash or "")
    if survey is not None and survey.status is SurveyStatus.ACTIVE:
        return f"survey {survey.id}: not text", _bot_notice(ctx, update.chat_id, texts.NOT_TEXT)
    return "greeted", _bot_notice(ctx, update.chat_id, texts.WELCOME)


# --- Official Account and ZNS ------------------------------------------------------------------


@router.oa_event(EventName(OAEventName.USER_SEND_TEXT))
def oa_text(event: OAEvent, ctx: InboundContext) -> Handled:
    text, sender = event.text or "", ctx.event.sender_hash or ""
    survey = find_conversation(ctx.session, Route.ZALO_OA, sender)
    if survey is not None and survey.status is SurveyStatus.ACTIVE:
        ids = handle_zalo_reply(ctx.session, survey, text, ctx.event.id, ctx.now)
        return f"survey {survey.id}", ids
    codes = find_start_codes(text)
    found = find_by_code(ctx.session, codes) if codes and event.user_id else None
    if found is not None and event.user_id is not None:
        chat_enc = ctx.runtime.vault.encrypt(event.user_id)
        ids = link_chat(ctx.session, ctx.runtime.settings, found, Route.ZALO_OA, chat_enc, sender, ctx.now)
        return f"linked survey {found.id}", ids
    if sender and parse_reply(text, ReplyKind.TEXT).keyword is Keyword.OPT_OUT:
        record_opt_out(ctx.session, sender, "zalo", ctx.now)
        return "opt-out without active survey", []
    if sender and event.user_id:
        # Outside any survey: kept for the unit's staff, answered on the OA once a day (flows.inbox).
        received = receive_in_inbox(
            ctx.session, ctx.runtime.settings, ctx.runtime.vault, inbound_event_id=ctx.event.id,
            sender=event.user_id, sender_hash=sender, text=text, channel=Channel.ZALO, now=ctx.now,
        )  # fmt: skip
        return f"inbox {received.message_id}", list(received.outbox_ids)
    return "no active survey for sender", []


@router.oa_event(EventName(OAEventName.USER_FEEDBACK))
def zns_rating(event: OAEvent, ctx: InboundContext) -> Handled:
    feedback = event.feedback
    if feedback is None:
        return "feedback without rating", []
    rating = Rating(
        msg_id=feedback.msg_id,
        tracking_id=feedback.tracking_id,
        rate=feedback.rate,
        note=feedback.note,
        feedbacks=tuple(feedback.feedbacks),
    )
    return record_rating(ctx.session, rating, ctx.event.id, ctx.now), []


@router.oa_event(EventName(OAEventName.USER_RECEIVED_MESSAGE))
def oa_delivered(event: OAEvent, ctx: InboundContext) -> Handled:
    """Zalo's delivery receipt for an OA or ZNS message of ours."""
    if not event.msg_id:
        return "receipt without msg_id", []
    done = ctx.session.execute(
        update(OutboundMessage)
        .where(
            OutboundMessage.provider_id == event.msg_id,
            OutboundMessage.channel == Channel.ZALO,
            OutboundMessage.status == OutboxStatus.SENT,
        )
        .values(status=OutboxStatus.DELIVERED, delivered_at=ctx.now)
        .execution_options(synchronize_session=False)
    )
    known = ctx.session.scalar(select(OutboundMessage.id).where(OutboundMessage.provider_id == event.msg_id))
    if known is None:
        tracking_id = event.message.tracking_id if event.message else None
        settled = settle_zalo_receipt(
            ctx.session,
            ctx.runtime.vault,
            msg_id=event.msg_id,
            user_id=event.user_id,
            tracking_id=tracking_id,
            now=ctx.now,
        )
        if settled is not None:
            return f"receipt settled unknown message {settled}", []
        return "receipt for an unknown message", []
    return ("delivered" if done.rowcount else "receipt already applied"), []  # type: ignore[attr-defined]


@router.oa_event(EventName(OAEventName.FOLLOW, OAEventName.UNFOLLOW))
def oa_follow(event: OAEvent, ctx: InboundContext) -> Handled:
    """Kept (stored) as an interaction that opens the OA window; nothing to answer."""
    return f"{event.event_name} noted", []


# Stateless: one per process, fed once per event inside the job's transaction.
_dispatcher = Dispatcher(name="sipas-zalo-inbound")
_dispatcher.include_router(router)
