"""Rows the flow tests need: an agency, a closed case with an encrypted phone, a scheduled survey,
and stored inbound events (answers reference the event they came from)."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from flows.understanding import Keyword, ReplyKind, parse_reply
from storage.crypto import PhoneVault
from storage.inbound import store_event
from storage.models import Agency, AgencyLevel, Case, Channel, Survey, SurveyStatus, Timer, TimerKind

# The longest agency name and case number we expect in real data (the SMS texts must fit them
# without shortening): the Ho Chi Minh City service centre, a national-format case number.
LONGEST_AGENCY = "Trung tâm Phục vụ hành chính công Thành phố Hồ Chí Minh"
LONGEST_AGENCY_SMS = "Trung tam Phuc vu hanh chinh cong Thanh pho Ho Chi Minh"
LONGEST_CASE_ID = "000.00.20.H29-250715-00012"
PHONE = "84912345678"
CLOSED_AT = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)

_sequence = itertools.count(1)


def make_agency(session: Session, *, name: str = LONGEST_AGENCY, code: str | None = None) -> Agency:
    agency = Agency(code=code or f"AG{next(_sequence)}", name=name, level=AgencyLevel.PROVINCE)
    session.add(agency)
    session.flush()
    return agency


def make_case(
    session: Session,
    vault: PhoneVault,
    agency: Agency,
    *,
    phone: str | None = PHONE,
    case_id: str | None = None,
    language: str = "vi",
) -> Case:
    case = Case(
        case_id=case_id or f"{LONGEST_CASE_ID[:-5]}{next(_sequence):05d}",
        agency_id=agency.id,
        procedure_code="1.001612",
        phone_enc=vault.encrypt(phone) if phone is not None else None,
        phone_hash=vault.lookup_hash(phone) if phone is not None else None,
        closed_at=CLOSED_AT,
        language=language,
        outcome="scheduled",
    )
    session.add(case)
    session.flush()
    return case


def make_survey(
    session: Session,
    case: Case,
    *,
    status: SurveyStatus = SurveyStatus.SCHEDULED,
    language: str = "vi",
) -> Survey:
    survey = Survey(
        case_pk=case.id,
        agency_id=case.agency_id,
        flow_name="sipas-sms",
        flow_version=1,
        channel=Channel.SMS,
        language=language,
        status=status,
        phone_hash=case.phone_hash,
        state={},
        created_at=CLOSED_AT,
    )
    session.add(survey)
    session.flush()
    session.add(Timer(survey_id=survey.id, kind=TimerKind.FIRST_MESSAGE, due_at=CLOSED_AT))
    session.flush()
    return survey


def scheduled_survey(
    session: Session,
    vault: PhoneVault,
    *,
    phone: str | None = PHONE,
    case_id: str | None = None,
    language: str = "vi",
    agency: Agency | None = None,
) -> Survey:
    """Agency + case + scheduled survey with its first-message timer, as intake leaves them."""
    agency = agency or make_agency(session)
    case = make_case(session, vault, agency, phone=phone, case_id=case_id, language=language)
    return make_survey(session, case, language=language)


def make_inbound(session: Session, vault: PhoneVault, text: str, *, phone: str = PHONE) -> int:
    """A stored Kannel MO event, as the webhook stores it; returns its id."""
    stored = store_event(
        session,
        provider="kannel",
        kind="mo",
        provider_id=f"mo-{next(_sequence)}",
        payload_enc=vault.encrypt(json.dumps({"from": phone, "text": text})),
        sender_hash=vault.lookup_hash(phone),
    )
    return stored.event_id


def restart_word() -> str:
    """A restart keyword of the parser (its word list belongs to flows.understanding)."""
    for word in ("LAI", "BAT DAU", "restart"):
        if parse_reply(word, ReplyKind.SCALE5).keyword is Keyword.RESTART:
            return word
    raise AssertionError("the parser knows no restart keyword")
