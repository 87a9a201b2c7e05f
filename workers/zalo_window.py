"""The Official Account's interaction window, checked before an OA message is sent.

Zalo lets an OA write to a user free of charge within 48 hours of the user's last interaction,
for a fee up to 7 days, and refuses after (-230). The last interaction we know of is the latest
event the user sent us (a message, a follow, a reaction): the webhook stores every event with the
user's look-up hash. Outside the agency's window (flows.channel_policy `oa_window_hours`) the
message is not attempted at all: the survey falls back to SMS at once instead of paying for, or
being refused, a message. When we have never heard from the user (the one-stop system gave us
their OA id), Zalo itself decides and its -213/-230 answer leads to the same fallback.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from bot.channels.zalo_oa.parse import PROVIDER_OA
from flows.rules import RuleBook
from storage.models import InboundEvent, OutboundMessage, Survey
from workers.runtime import Runtime

__all__ = ["FREE_WINDOW", "INTERACTION_KINDS", "last_interaction", "oa_window_refusal"]

log = structlog.get_logger(__name__)

FREE_WINDOW = timedelta(hours=48)
# Events in which the user acts towards the OA (user_send_text, user_send_image, ... included).
INTERACTION_KINDS = ("follow", "user_reacted_message", "user_click_chatnow", "user_submit_info")


def last_interaction(session: Session, user_hash: str) -> datetime | None:
    """When the user last acted towards the OA, as far as our stored events tell."""
    return session.scalar(
        select(func.max(InboundEvent.received_at)).where(
            InboundEvent.provider == PROVIDER_OA,
            InboundEvent.sender_hash == user_hash,
            or_(InboundEvent.kind.startswith("user_send"), InboundEvent.kind.in_(INTERACTION_KINDS)),
        )
    )


def oa_window_refusal(
    session: Session, runtime: Runtime, message: OutboundMessage, user_id: str, now: datetime
) -> str | None:
    """Why this OA message must not be sent now, or None when it may be."""
    last = last_interaction(session, runtime.vault.lookup_hash(user_id))
    if last is None:
        return None
    hours = 7 * 24
    survey = session.get(Survey, message.survey_id) if message.survey_id is not None else None
    if survey is not None:
        hours = RuleBook(session, runtime.settings).for_agency_id(survey.agency_id).channel.oa_window_hours
    quiet = now - last
    if quiet > timedelta(hours=hours):
        return f"outside the OA interaction window: last interaction {quiet} ago, window {hours} h"
    if quiet > FREE_WINDOW:
        log.info(
            "oa message in the billable window",
            message_id=message.id,
            quiet_hours=int(quiet.total_seconds() // 3600),
        )
    return None
