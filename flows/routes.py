"""Where a survey's messages go: the route (which API) and the encrypted address on it.

A survey on SMS writes to the case's phone through the SMS gateway. A Zalo survey has a route:
the Official Account (to the OA user id the case carries, or the one that linked itself with the
start code), the Bot Platform (to the chat that sent the start code), or ZNS (a template by phone
that opens the survey with the 5-star rating; it cannot carry a conversation, so questions and
reminders are not sent on it; the citizen continues on the bot with the start code, or the rating
alone stands).

The start code is how a citizen takes a survey to the Zalo bot, which cannot write first: six
characters from an alphabet without look-alikes (no 0/O, 1/I/L), sent in the ZNS template and
typed (or scanned) by the citizen as their first message to the bot (docs/zalo.md).
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from config.settings import Settings
from storage.models import Channel, Route, Survey
from storage.outbox import NewMessage, stage

__all__ = [
    "START_CODE_ALPHABET",
    "START_CODE_LENGTH",
    "conversation_recipient",
    "ensure_start_code",
    "find_start_codes",
    "first_contact",
    "rating_request",
]

START_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
START_CODE_LENGTH = 6
_CODE_TOKEN = re.compile(rf"[{START_CODE_ALPHABET}]{{{START_CODE_LENGTH}}}")
# ZNS template parameters are short fields; long agency names are cut rather than refused.
_TEMPLATE_VALUE_MAX = 100


def conversation_recipient(survey: Survey) -> tuple[str | None, Route]:
    """(encrypted address, route) for conversation messages: questions, replies, reminders.
    The address is None where the route cannot carry a conversation (ZNS) or is unknown."""
    if survey.channel is Channel.SMS:
        return survey.case.phone_enc, Route.SMS
    route = survey.zalo_route or Route.ZALO_OA
    if route is Route.ZALO_BOT:
        return survey.zalo_chat_enc, route
    if route is Route.ZALO_OA:
        return survey.zalo_chat_enc or survey.case.zalo_user_id_enc, route
    return None, route


def first_contact(survey: Survey) -> tuple[str | None, Route]:
    """(encrypted address, route) of a survey's opening: by phone for a ZNS survey, else the
    conversation's address."""
    if survey.channel is Channel.ZALO and survey.zalo_route is Route.ZNS:
        return survey.case.phone_enc, Route.ZNS
    return conversation_recipient(survey)


def ensure_start_code(session: Session, survey: Survey) -> str:
    """The survey's start code, made once (unique among all surveys)."""
    if survey.start_code:
        return survey.start_code
    while True:
        code = "".join(secrets.choice(START_CODE_ALPHABET) for _ in range(START_CODE_LENGTH))
        if session.scalar(select(Survey.id).where(Survey.start_code == code)) is None:
            survey.start_code = code
            session.flush()
            return code


def find_start_codes(text: str) -> list[str]:
    """Start codes a citizen's message may hold, in order: `KX7P2M`, `ma kx7-p2m`, `Mã: KX7 P2M`.
    Only whole words count (a code typed in pieces is joined from consecutive words), so a
    sentence never yields a code by gluing parts of words together."""
    words = [w for w in re.split(r"[^0-9A-Z]+", unicodedata.normalize("NFKC", text).upper()) if w]
    found: list[str] = []
    for start in range(len(words)):
        joined = ""
        for word in words[start:]:
            joined += word
            if len(joined) >= START_CODE_LENGTH:
                break
        if _CODE_TOKEN.fullmatch(joined) and joined not in found:
            found.append(joined)
    return found


def template_data(survey: Survey, code: str) -> dict[str, Any]:
    """The ZNS rating template's parameters (the template registered with Zalo declares them)."""
    case = survey.case
    return {
        "ma_ho_so": case.case_id[:_TEMPLATE_VALUE_MAX],
        "ten_co_quan": case.agency.name[:_TEMPLATE_VALUE_MAX],
        "ma_khao_sat": code,
    }


def rating_request(
    session: Session, settings: Settings, survey: Survey, phone_enc: str, send_at: datetime
) -> None:
    """Stage (storage.outbox.stage) the ZNS service-rating template for a survey's first
    contact. `tracking_id` is the survey id: the rating comes back with it (webhook
    `user_feedback`, `rating/get`)."""
    code = ensure_start_code(session, survey)
    template_id = settings.ZNS_RATING_TEMPLATE_ID
    rating = NewMessage(
        dedupe_key=f"survey:{survey.id}:open:zns",
        channel=Channel.ZALO,
        route=Route.ZNS,
        recipient_enc=phone_enc,
        text=f"ZNS {template_id or '(no template)'}: service rating for case {survey.case.case_id}",
        payload={
            "template_id": template_id,
            "template_data": template_data(survey, code),
            "tracking_id": str(survey.id),
        },
        survey_id=survey.id,
        not_before=send_at,
    )
    stage(session, [rating])
