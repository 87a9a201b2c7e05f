"""Rows for score tests, written with the real models (no intake or flows needed).

`surveyed_case` builds the usual shape in one call: a closed case, optionally its survey, the
survey's opening message in a given outbox state, and the citizen's answers.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from storage.crypto import PhoneVault
from storage.models import (
    Agency,
    AgencyLevel,
    Answer,
    Case,
    Channel,
    OnTime,
    OutboundMessage,
    OutboxStatus,
    Survey,
    SurveyStatus,
)
from tests.conftest import SECRET_KEY

_VAULT = PhoneVault(SECRET_KEY)
PROCEDURE_NAMES = {"1.001612": "Đăng ký khai sinh", "1.001193": "Đăng ký kết hôn"}
_serial = itertools.count(1)


def make_agency(
    session: Session,
    code: str,
    *,
    name: str | None = None,
    level: AgencyLevel = AgencyLevel.COMMUNE,
    parent: Agency | None = None,
) -> Agency:
    agency = Agency(
        code=code, name=name or f"Đơn vị {code}", level=level, parent_id=parent.id if parent else None
    )
    session.add(agency)
    session.flush()
    return agency


def make_case(
    session: Session,
    agency: Agency,
    closed_at: datetime,
    *,
    on_time: OnTime | None = None,
    outcome: str = "scheduled",
    procedure: str = "1.001612",
) -> Case:
    number = next(_serial)
    phone = f"09{number:08d}"
    case = Case(
        case_id=f"{agency.code}-{number:06d}",
        agency_id=agency.id,
        procedure_code=procedure,
        procedure_name=PROCEDURE_NAMES.get(procedure),
        phone_enc=_VAULT.encrypt(phone),
        phone_hash=_VAULT.lookup_hash(phone),
        closed_at=closed_at,
        on_time=on_time,
        outcome=outcome,
    )
    session.add(case)
    session.flush()
    return case


def make_survey(
    session: Session,
    case: Case,
    *,
    channel: Channel = Channel.SMS,
    status: SurveyStatus = SurveyStatus.COMPLETED,
) -> Survey:
    survey = Survey(
        case_pk=case.id,
        agency_id=case.agency_id,
        flow_name=f"sipas-{channel.value}",
        flow_version=1,
        channel=channel,
        status=status,
        phone_hash=case.phone_hash,
    )
    session.add(survey)
    session.flush()
    return survey


def add_message(
    session: Session, survey: Survey, status: OutboxStatus, *, sent: bool | None = None
) -> OutboundMessage:
    """One outbound message of the survey; `sent` (default: status is sent/delivered) sets sent_at."""
    at = survey.case.closed_at + timedelta(minutes=1)
    was_sent = status in (OutboxStatus.SENT, OutboxStatus.DELIVERED) if sent is None else sent
    message = OutboundMessage(
        dedupe_key=f"survey:{survey.id}:msg:{next(_serial)}",
        survey_id=survey.id,
        channel=survey.channel,
        recipient_enc=survey.case.phone_enc or "",
        text="Tin nhan khao sat",
        status=status,
        sent_at=at if was_sent else None,
        delivered_at=at if status is OutboxStatus.DELIVERED else None,
    )
    session.add(message)
    session.flush()
    return message


def add_answer(session: Session, survey: Survey, criterion: str, value: int) -> Answer:
    answer = Answer(
        survey_id=survey.id,
        flow_name=survey.flow_name,
        flow_version=survey.flow_version,
        question_key=criterion.replace(".", "_"),
        criterion_code=criterion,
        value=value,
        raw_text=str(value),
        answered_at=datetime.now(UTC),
    )
    session.add(answer)
    session.flush()
    return answer


def surveyed_case(
    session: Session,
    agency: Agency,
    closed_at: datetime,
    answers: Mapping[str, int] | None = None,
    *,
    on_time: OnTime | None = None,
    channel: Channel = Channel.SMS,
    status: SurveyStatus = SurveyStatus.COMPLETED,
    message: OutboxStatus | None = OutboxStatus.DELIVERED,
    procedure: str = "1.001612",
) -> Case:
    """A closed case with its survey, opening message (unless `message` is None) and answers."""
    case = make_case(session, agency, closed_at, on_time=on_time, procedure=procedure)
    survey = make_survey(session, case, channel=channel, status=status)
    if message is not None:
        add_message(session, survey, message)
    for criterion, value in (answers or {}).items():
        add_answer(session, survey, criterion, value)
    return case
