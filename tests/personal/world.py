"""A database holding one citizen's data in every place the service keeps personal data, written
through the models (as the webhooks and jobs leave it), for the purge, erase and rotation tests."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import JSON, String, Text, select
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

    @property
    def free_texts(self) -> tuple[str, ...]:
        """What this citizen wrote in their own words (gone after an erase, kept by the purge
        where it feeds the staff's reading: comments, answers' text)."""
        return (f"nhiet tinh {self.tag}", f"goi 0912000111 {self.tag}", f"xin chao {self.tag}")


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
    comment, raw, greeting = who.free_texts
    # The stored state as a version that kept more than numbers would have left it: a free-text
    # answer and contact data beside the keys the flow reads.
    state = {
        "status": "done",
        "question": None,
        "reprompts": 0,
        "version": 4,
        "answers": {"overall": 4, "comment": comment},
        "path": ["overall", "comment"],
        "events": [1, 2],
        "contact": {"phone": who.phone, "zalo": who.zalo_id},
        "last_text": raw,
    }
    survey = Survey(
        case_pk=case.id, agency_id=unit.id, flow_name="sipas-sms", channel=Channel.ZALO,
        status=SurveyStatus.COMPLETED, phone_hash=phone_hash, zalo_route=Route.ZALO_BOT,
        zalo_chat_enc=vault.encrypt(who.chat_id), zalo_chat_hash=chat_hash, created_at=at, finished_at=at,
        state=state, state_version=4,
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
    mo_request = {"from": who.phone[1:], "to": "8040", "text": f"4 {raw}", "id": f"mo-{who.tag}",
                  "ts": at.strftime("%Y-%m-%d %H:%M:%S")}  # fmt: skip
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
                   criterion_code="overall", value=4, raw_text=f"4 {raw}", inbound_event_id=mo.id,
                   answered_at=at),
            Comment(survey_id=survey.id, question_key="comment", text=f"can bo {comment}", created_at=at),
            InboxMessage(inbound_event_id=zalo.id, agency_id=unit.id, channel=Channel.ZALO,
                         sender_enc=vault.encrypt(who.chat_id), sender_hash=chat_hash, text=greeting,
                         received_at=at),
        ]
    )  # fmt: skip
    session.flush()
    return survey.id


def refuse(session: Session, vault: PhoneVault, who: Citizen, at: datetime) -> None:
    session.add(OptOut(phone_hash=vault.lookup_hash(who.phone), source="sms", created_at=at))


def staff(session: Session, vault: PhoneVault, phone: str, *, encrypted: bool = False) -> None:
    """A staff number, registered as today (hash and encrypted) or before 0012 (hash only)."""
    session.add(StaffPhone(agency_id=agency(session).id, phone_hash=vault.lookup_hash(phone),
                           phone_enc=vault.encrypt(phone) if encrypted else None))  # fmt: skip


def leftovers(session: Session, vault: PhoneVault, who: Citizen, *, free_text: bool = False) -> list[str]:
    """Every place in the database where `who`'s number or Zalo ids (and with `free_text`, what
    they wrote) are still readable: every text and JSON column of every table, in clear and
    after decrypting whatever decrypts."""
    wanted = who.secrets + (who.free_texts if free_text else ())
    found = []
    for table in Base.metadata.sorted_tables:
        columns = [c for c in table.columns if isinstance(c.type, String | Text | JSON)]
        for row in session.execute(select(*columns)) if columns else ():
            for column, value in zip(columns, row, strict=True):
                if not value:
                    continue
                readable = [value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)]
                with contextlib.suppress(DecryptionError, ValueError, AttributeError):
                    readable.append(vault.decrypt(value))
                for text in readable:
                    for secret in wanted:
                        if secret in text:
                            found.append(f"{table.name}.{column.name}")
    return found


def ago(now: datetime, days: int) -> datetime:
    return now - timedelta(days=days)
