"""`sipas subject export PHONE` and `sipas subject erase PHONE`: a citizen's right to see and to
erase what the service holds about them (Nghị định 13/2023/NĐ-CP on personal data).

The citizen is found by the keyed hash of their number and, through their cases, by the Zalo ids
the one-stop system gave us for them. Export prints everything held as JSON (decrypted). Erase
removes contact data (numbers, Zalo ids, raw provider requests) and free text (comments, the
text of answers, inbox messages, anything but number answers in a survey's stored state, the
provider's reason a survey left Zalo); the answers' values stay, no longer linked to anyone, so the
scores do not change. A refusal (opt-out) is kept as a hash: it is what honours the refusal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import click
from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from config.settings import get_settings
from flows.engine import anonymous_state
from flows.phones import InvalidPhoneError, normalize_phone
from storage import audit
from storage.crypto import DecryptionError, PhoneVault
from storage.db import session_factory
from storage.models import (
    Answer,
    Case,
    Comment,
    InboundEvent,
    InboxMessage,
    OptOut,
    OutboundMessage,
    Survey,
    SurveyStatus,
)

ERASED = ""  # what an encrypted column holds once its value is gone (as the retention purge)
_OPEN = (SurveyStatus.SCHEDULED, SurveyStatus.ACTIVE)


@dataclass
class Subject:
    """The rows that belong to one citizen."""

    phone: str
    hashes: set[str]
    cases: list[Case] = field(default_factory=list)
    surveys: list[Survey] = field(default_factory=list)
    outbox: list[OutboundMessage] = field(default_factory=list)
    events: list[InboundEvent] = field(default_factory=list)
    inbox: list[InboxMessage] = field(default_factory=list)
    opt_out: OptOut | None = None


def _decrypt(vault: PhoneVault, token: str | None) -> str | None:
    if not token:
        return None
    try:
        return vault.decrypt(token)
    except DecryptionError:
        return None


def find_subject(session: Session, vault: PhoneVault, phone: str) -> Subject:
    """Every row held about `phone` (E.164): by its hash, and by the Zalo ids its cases carry."""
    phone_hash = vault.lookup_hash(phone)
    subject = Subject(phone=phone, hashes={phone_hash})
    subject.cases = list(session.scalars(select(Case).where(Case.phone_hash == phone_hash).order_by(Case.id)))
    identities = {phone}
    for case in subject.cases:
        zalo_id = _decrypt(vault, case.zalo_user_id_enc)
        if zalo_id:
            identities.add(zalo_id)
            subject.hashes.add(vault.lookup_hash(zalo_id))
    case_ids = [case.id for case in subject.cases]
    subject.surveys = list(
        session.scalars(
            select(Survey)
            .where(
                or_(
                    Survey.case_pk.in_(case_ids),
                    Survey.phone_hash == phone_hash,
                    Survey.zalo_chat_hash.in_(subject.hashes),
                )
            )
            .order_by(Survey.id)
        )
    )
    for survey in subject.surveys:
        chat = _decrypt(vault, survey.zalo_chat_enc)
        if chat:
            identities.add(chat)
            subject.hashes.add(vault.lookup_hash(chat))
    survey_ids = [survey.id for survey in subject.surveys]
    linked = session.scalars(select(OutboundMessage).where(OutboundMessage.survey_id.in_(survey_ids)))
    # Messages outside a survey (Zalo greetings, inbox replies, opt-in answers) carry no hash:
    # recognise them by their decrypted recipient.
    loose = (
        message
        for message in session.scalars(
            select(OutboundMessage).where(
                OutboundMessage.survey_id.is_(None), OutboundMessage.recipient_enc != ERASED
            )
        )
        if _decrypt(vault, message.recipient_enc) in identities
    )
    subject.outbox = sorted([*linked, *loose], key=lambda message: message.id)
    subject.events = list(
        session.scalars(
            select(InboundEvent).where(InboundEvent.sender_hash.in_(subject.hashes)).order_by(InboundEvent.id)
        )
    )
    subject.inbox = list(
        session.scalars(
            select(InboxMessage).where(InboxMessage.sender_hash.in_(subject.hashes)).order_by(InboxMessage.id)
        )
    )
    subject.opt_out = session.get(OptOut, phone_hash)
    return subject


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def export_subject(session: Session, vault: PhoneVault, phone: str) -> dict[str, Any]:
    """Everything held about `phone`, decrypted, as JSON-ready data."""
    subject = find_subject(session, vault, phone)
    survey_ids = [survey.id for survey in subject.surveys]
    answers = session.scalars(select(Answer).where(Answer.survey_id.in_(survey_ids)).order_by(Answer.id))
    comments = session.scalars(select(Comment).where(Comment.survey_id.in_(survey_ids)).order_by(Comment.id))
    return {
        "phone": phone,
        "cases": [
            {
                "case_id": case.case_id,
                "agency_code": case.agency.code,
                "procedure_code": case.procedure_code,
                "procedure_name": case.procedure_name,
                "phone": _decrypt(vault, case.phone_enc),
                "zalo_user_id": _decrypt(vault, case.zalo_user_id_enc),
                "closed_at": _iso(case.closed_at),
                "outcome": case.outcome,
            }
            for case in subject.cases
        ],
        "surveys": [
            {
                "id": survey.id,
                "channel": survey.channel.value,
                "status": survey.status.value,
                "zalo_chat_id": _decrypt(vault, survey.zalo_chat_enc),
                "created_at": _iso(survey.created_at),
                "finished_at": _iso(survey.finished_at),
            }
            for survey in subject.surveys
        ],
        "answers": [
            {
                "survey_id": answer.survey_id,
                "question_key": answer.question_key,
                "value": answer.value,
                "text_value": answer.text_value,
                "raw_text": answer.raw_text,
                "answered_at": _iso(answer.answered_at),
            }
            for answer in answers
        ],
        "comments": [
            {"survey_id": comment.survey_id, "text": comment.text, "created_at": _iso(comment.created_at)}
            for comment in comments
        ],
        "messages_sent": [
            {
                "id": message.id,
                "channel": message.channel.value,
                "to": _decrypt(vault, message.recipient_enc),
                "text": message.text,
                "status": message.status.value,
                "created_at": _iso(message.created_at),
                "sent_at": _iso(message.sent_at),
            }
            for message in subject.outbox
        ],
        "messages_received": [
            {
                "provider": event.provider,
                "kind": event.kind,
                "received_at": _iso(event.received_at),
                "request": _json_or_text(_decrypt(vault, event.payload_enc)),
            }
            for event in subject.events
        ],
        "inbox": [
            {"text": row.text, "status": row.status.value, "received_at": _iso(row.received_at)}
            for row in subject.inbox
        ],
        "opt_out": (
            {"source": subject.opt_out.source, "since": _iso(subject.opt_out.created_at)}
            if subject.opt_out is not None
            else None
        ),
    }


def _json_or_text(value: str | None) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return value


def erase_subject(session: Session, vault: PhoneVault, phone: str, actor: str) -> dict[str, int]:
    """Erase contact data and free text of `phone`; answers stay, anonymous. In the caller's
    transaction; an audit entry records the erasure (by hash prefix, never the number)."""
    subject = find_subject(session, vault, phone)
    survey_ids = [survey.id for survey in subject.surveys]
    for case in subject.cases:
        case.phone_enc = case.phone_hash = case.zalo_user_id_enc = case.zalo_user_hash = None
    for survey in subject.surveys:
        survey.phone_hash = survey.zalo_chat_enc = survey.zalo_chat_hash = None
        survey.state = anonymous_state(survey.state)
        survey.fallback_reason = None  # a provider's words about this person's account
        if survey.status in _OPEN:  # nobody left to ask
            survey.status = SurveyStatus.OPTED_OUT
    for message in subject.outbox:
        message.recipient_enc = ERASED
    for event in subject.events:
        event.payload_enc, event.sender_hash = ERASED, None
    for row in subject.inbox:
        row.sender_enc = row.sender_hash = row.text = ERASED
    answers = session.execute(
        update(Answer)
        .where(
            Answer.survey_id.in_(survey_ids),
            or_(Answer.raw_text.is_not(None), Answer.text_value.is_not(None)),
        )
        .values(raw_text=None, text_value=None)
        .execution_options(synchronize_session=False)
    )
    comments = session.execute(
        delete(Comment).where(Comment.survey_id.in_(survey_ids)).execution_options(synchronize_session=False)
    )
    counts = {
        "cases": len(subject.cases),
        "surveys": len(subject.surveys),
        "messages_sent": len(subject.outbox),
        "messages_received": len(subject.events),
        "inbox": len(subject.inbox),
        "answer_texts": int(answers.rowcount),  # type: ignore[attr-defined]
        "comments": int(comments.rowcount),  # type: ignore[attr-defined]
        "opt_out_kept": int(subject.opt_out is not None),
    }
    audit.append(session, actor, "subject.erase", f"phone_hash:{vault.lookup_hash(phone)[:12]}", None, counts)
    return counts


@click.group("subject")
def subject() -> None:
    """What the service holds about one citizen: export it, or erase it."""


def _phone(raw: str) -> str:
    try:
        return normalize_phone(raw)
    except InvalidPhoneError as exc:
        raise click.BadParameter(str(exc), param_hint="PHONE") from None


@subject.command("export")
@click.argument("phone")
def export_command(phone: str) -> None:
    """Print everything held about PHONE as JSON (decrypted: handle the output with care)."""
    settings = get_settings()
    settings.require("SIPAS_SECRET_KEY")
    vault = PhoneVault.from_settings(settings)
    with session_factory(settings.DATABASE_URL)() as session:
        data = export_subject(session, vault, _phone(phone))
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


@subject.command("erase")
@click.argument("phone")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def erase_command(phone: str, yes: bool) -> None:
    """Erase PHONE's contact data and free text; answers stay, anonymous; a refusal stays."""
    settings = get_settings()
    settings.require("SIPAS_SECRET_KEY")
    vault = PhoneVault.from_settings(settings)
    number = _phone(phone)
    if not yes:
        click.confirm(f"Erase everything held about {number}? This cannot be undone", abort=True)
    with session_factory(settings.DATABASE_URL)() as session, session.begin():
        counts = erase_subject(session, vault, number, actor="cli:subject")
    click.echo(json.dumps({"erased": counts}, ensure_ascii=False))


COMMANDS = [subject]
