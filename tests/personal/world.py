"""A database holding one citizen's data in every place the service keeps personal data, written
through the models (as the webhooks and jobs leave it), for the purge, erase and rotation tests."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import String, Text, select
from sqlalchemy.orm import Session

from storage import outbox
from storage.crypto import DecryptionError, PhoneVault
from storage.models import (
    Agency,
    AgencyLevel,
    Answer,
    Base,
    Case,
    Channel,
    Comment,
    InboundEvent,
    InboxMessage,
    OptOut,
    OutboxStatus,
    Route,
    StaffPhone,
    Survey,
    SurveyStatus,
)


@dataclass(frozen=True)
class Citizen:
    phone: str  # E.164
    zalo_id: str
    chat_id: str
    tag: str  # makes every id of this citizen unique

    @property
    def secrets(self) -> tuple[str, ...]:
        """What must never be left, in clear or encrypted: the number (any spelling) and ids."""
        return (self.phone[3:], self.zalo_id, self.chat_id)


ALICE = Citizen("+84912345678", "2468013579246801357", "6ede9afa66b88fe6d6a9", "a")
BOB = Citizen("+84987654321", "1357924680135792468", "7fdf0b0b77c99af7e7b0", "b")


def agency(session: Session) -> Agency:
    found = session.scalar(select(Agency).where(Agency.code == "P-1"))
    if found is None:
        found = Agency(code="P-1", name="UBND phường Một", level=AgencyLevel.COMMUNE)
        session.add(found)
        session.flush()
    return found


def seed(session: Session, vault: PhoneVault, who: Citizen, at: datetime) -> int:
    """Everything the service keeps about `who`, dated `at`; the survey is over. Its id."""
    unit = agency(session)
    phone_hash, zalo_hash, chat_hash = (vault.lookup_hash(v) for v in (who.phone, who.zalo_id, who.chat_id))
    case = Case(
        case_id=f"HS-{who.tag}", agency_id=unit.id, procedure_code="1.001", procedure_name="Khai sinh",
        phone_enc=vault.encrypt(who.phone), phone_hash=phone_hash,
        zalo_user_id_enc=vault.encrypt(who.zalo_id), zalo_user_hash=zalo_hash,
        closed_at=at, outcome="scheduled", created_at=at,
    )  # fmt: skip
    session.add(case)
    session.flush()
    survey = Survey(
        case_pk=case.id, agency_id=unit.id, flow_name="sipas-sms", channel=Channel.ZALO,
        status=SurveyStatus.COMPLETED, phone_hash=phone_hash, zalo_route=Route.ZALO_BOT,
        zalo_chat_enc=vault.encrypt(who.chat_id), zalo_chat_hash=chat_hash, created_at=at, finished_at=at,
    )  # fmt: skip
    session.add(survey)
    session.flush()
    for key, channel, survey_id, recipient in (
        (f"q1-{who.tag}", Channel.SMS, survey.id, who.phone),
        (f"greeting-{who.tag}", Channel.ZALO, None, who.chat_id),  # a bot greeting: no survey
        (f"optin-{who.tag}", Channel.SMS, None, who.phone),
    ):
        message = outbox.add_message(
            session, dedupe_key=key, channel=channel, recipient_enc=vault.encrypt(recipient),
            text="Cau 1/3", survey_id=survey_id,
        )  # fmt: skip
        message.status, message.created_at = OutboxStatus.DELIVERED, at
    mo_request = {"from": who.phone[1:], "to": "8040", "text": "4 goi 0912000111"}
    mo = InboundEvent(
        provider="kannel", kind="mo", provider_id=f"mo-{who.tag}", sender_hash=phone_hash, received_at=at,
        payload_enc=vault.encrypt(json.dumps(mo_request)),
    )  # fmt: skip
    bot_message = {
        "from": {"id": who.chat_id},
        "chat": {"id": who.chat_id},
        "text": "5",
        "message_id": f"m-{who.tag}",
    }
    update = {"event_name": "message.text.received", "message": bot_message}
    zalo = InboundEvent(
        provider="zalo_bot", kind="message.text.received", provider_id=f"zb-{who.tag}", sender_hash=chat_hash,
        received_at=at,
        payload_enc=vault.encrypt(json.dumps(update)),
    )  # fmt: skip
    session.add_all([mo, zalo])
    session.flush()
    session.add_all(
        [
            Answer(survey_id=survey.id, flow_name="sipas-sms", flow_version=1, question_key="overall",
                   criterion_code="overall", value=4, raw_text="4 goi 0912000111", inbound_event_id=mo.id,
                   answered_at=at),
            Comment(survey_id=survey.id, question_key="comment", text="can bo nhiet tinh", created_at=at),
            InboxMessage(inbound_event_id=zalo.id, agency_id=unit.id, channel=Channel.ZALO,
                         sender_enc=vault.encrypt(who.chat_id), sender_hash=chat_hash, text="xin chao",
                         received_at=at),
        ]
    )  # fmt: skip
    session.flush()
    return survey.id


def refuse(session: Session, vault: PhoneVault, who: Citizen, at: datetime) -> None:
    session.add(OptOut(phone_hash=vault.lookup_hash(who.phone), source="sms", created_at=at))


def staff(session: Session, vault: PhoneVault, phone: str) -> None:
    session.add(StaffPhone(agency_id=agency(session).id, phone_hash=vault.lookup_hash(phone)))


def leftovers(session: Session, vault: PhoneVault, who: Citizen) -> list[str]:
    """Every place in the database where `who`'s number or Zalo ids are still readable: every
    text column of every table, in clear and after decrypting whatever decrypts."""
    found = []
    for table in Base.metadata.sorted_tables:
        columns = [c for c in table.columns if isinstance(c.type, String | Text)]
        for row in session.execute(select(*columns)) if columns else ():
            for column, value in zip(columns, row, strict=True):
                if not value:
                    continue
                readable = [value]
                with contextlib.suppress(DecryptionError, ValueError):
                    readable.append(vault.decrypt(value))
                for text in readable:
                    for secret in who.secrets:
                        if secret in text:
                            found.append(f"{table.name}.{column.name}")
    return found


def ago(now: datetime, days: int) -> datetime:
    return now - timedelta(days=days)
