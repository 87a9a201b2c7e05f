"""Retention: raw contact data is deleted once a survey is over plus the retention period.

Scores, answers and comments stay (they carry no contact data); opt-outs stay as keyed hashes so
that a refusal is honoured for good (Luật 91/2025/QH15 allows keeping what honours the refusal).
Purged: numbers and Zalo ids of cases and surveys (and anything but number answers in a
survey's stored state: flows.engine.anonymous_state), the recipient of every outbox row (with or
without a survey: Zalo greetings, inbox replies, opt-in answers), the sender of inbox messages,
and the raw requests of inbound events. tests/test_retention.py decrypts whatever is left.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import exists, or_, select, update
from sqlalchemy.orm import Session

from flows.engine import anonymous_state
from storage.models import (
    Case,
    InboundEvent,
    InboxMessage,
    OutboundMessage,
    OutboxStatus,
    Survey,
    SurveyStatus,
)
from workers.runtime import get_runtime

log = structlog.get_logger(__name__)

PURGED = ""  # what an encrypted column holds once its contact data is gone

_OPEN = (SurveyStatus.SCHEDULED, SurveyStatus.ACTIVE)
# Outbox rows still to be sent (or settled) keep their recipient whatever their age.
_PENDING = (OutboxStatus.QUEUED, OutboxStatus.SENDING, OutboxStatus.UNKNOWN)


def purge_expired_contacts() -> dict[str, int]:
    """RQ cron job and `sipas purge`: delete contact data older than SIPAS_RETENTION_DAYS."""
    runtime = get_runtime()
    with runtime.sessions() as session, session.begin():
        return purge(session, datetime.now(UTC) - timedelta(days=runtime.settings.SIPAS_RETENTION_DAYS))


def purge(session: Session, cutoff: datetime) -> dict[str, int]:
    """Purge cases closed before `cutoff` whose survey is over (or that had none)."""
    open_survey = exists().where(Survey.case_pk == Case.id, Survey.status.in_(_OPEN))
    cases = session.scalars(
        select(Case.id).where(
            Case.closed_at < cutoff,
            or_(Case.phone_enc.is_not(None), Case.zalo_user_id_enc.is_not(None)),
            ~open_survey,
        )
    ).all()
    if cases:
        session.execute(
            update(Case)
            .where(Case.id.in_(cases))
            .values(phone_enc=None, phone_hash=None, zalo_user_id_enc=None, zalo_user_hash=None)
        )
        survey_ids = select(Survey.id).where(Survey.case_pk.in_(cases))
        session.execute(
            update(Survey)
            .where(Survey.case_pk.in_(cases))
            .values(phone_hash=None, zalo_chat_enc=None, zalo_chat_hash=None)
        )
        for survey in session.scalars(select(Survey).where(Survey.case_pk.in_(cases))):
            survey.state = anonymous_state(survey.state)
        session.execute(
            update(OutboundMessage)
            .where(OutboundMessage.survey_id.in_(survey_ids), OutboundMessage.recipient_enc != PURGED)
            .values(recipient_enc=PURGED)
        )
    loose = session.execute(
        update(OutboundMessage)
        .where(
            OutboundMessage.survey_id.is_(None),
            OutboundMessage.created_at < cutoff,
            OutboundMessage.status.not_in(_PENDING),
            OutboundMessage.recipient_enc != PURGED,
        )
        .values(recipient_enc=PURGED)
        .execution_options(synchronize_session=False)
    )
    inbox = session.execute(
        update(InboxMessage)
        .where(InboxMessage.received_at < cutoff, InboxMessage.sender_enc != PURGED)
        .values(sender_enc=PURGED, sender_hash=PURGED)
        .execution_options(synchronize_session=False)
    )
    events = session.execute(
        update(InboundEvent)
        .where(InboundEvent.received_at < cutoff, InboundEvent.payload_enc != PURGED)
        .values(payload_enc=PURGED, sender_hash=None)
        .execution_options(synchronize_session=False)
    )
    counts = {
        "cases": len(cases),
        "events": int(events.rowcount),  # type: ignore[attr-defined]
        "messages_without_survey": int(loose.rowcount),  # type: ignore[attr-defined]
        "inbox": int(inbox.rowcount),  # type: ignore[attr-defined]
    }
    log.info("retention purge", cutoff=cutoff.isoformat(), **counts)
    return counts
