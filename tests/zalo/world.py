"""The service's own code paths, called in order as the processes would: intake, timers, the send
job, webhook storage and the inbound job. Tests read like the citizen's story without mocking any
of it (the simulated Zalo answers over HTTP)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.channels.intake import store_and_wake_blocking
from bot.channels.zalo.events import InboundRecord
from bot.channels.zalo_bot.parse import describe_bot_event
from bot.channels.zalo_oa.parse import describe_oa_event
from flows.intake import OutcomeKind, submit_cases
from storage.crypto import PhoneVault
from storage.models import Agency, AgencyLevel, OutboundMessage, Timer, TimerKind
from tests.support.app import RecordingDispatcher
from tests.zalo.conftest import ZALO_FIRST
from workers.inbound import process
from workers.runtime import Runtime
from workers.sending import deliver
from workers.timers import fire

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
WARD = f"{ZALO_FIRST}-W"  # inherits zalo_first from ZALO_FIRST
SMS_WARD = "SM-W"  # no rule: sms_first


def make_agencies(runtime: Runtime) -> None:
    with runtime.sessions() as session, session.begin():
        province = Agency(code=ZALO_FIRST, name="UBND tỉnh Zalo Phát", level=AgencyLevel.PROVINCE)
        session.add(province)
        session.flush()
        session.add(
            Agency(code=WARD, name="UBND phường Hạ Đình", level=AgencyLevel.COMMUNE, parent_id=province.id)
        )
        session.add(Agency(code=SMS_WARD, name="UBND phường Kim Giang", level=AgencyLevel.COMMUNE))


def case(case_id: str, *, agency: str = WARD, **fields: Any) -> dict[str, Any]:
    return {
        "case_id": case_id,
        "agency_code": agency,
        "procedure_code": "1.001612",
        "closed_at": datetime.now(UTC).astimezone(HCM).isoformat(),
        **fields,
    }


def submit(runtime: Runtime, body: dict[str, Any]) -> int:
    """Intake of one case; the survey id (the case must be scheduled)."""
    with runtime.sessions() as session, session.begin():
        [outcome] = submit_cases(session, runtime.vault, runtime.settings, [body], datetime.now(UTC))
    assert outcome.outcome is OutcomeKind.SCHEDULED, outcome
    assert outcome.survey_id is not None
    return outcome.survey_id


def start(runtime: Runtime, survey_id: int) -> list[int]:
    """The first-message timer fires (as the cron sweep would make it)."""
    with runtime.sessions() as session:
        timer_id = session.scalars(
            select(Timer.id).where(Timer.survey_id == survey_id, Timer.kind == TimerKind.FIRST_MESSAGE)
        ).one()
    _result, ids = fire(runtime, timer_id)
    return ids


def send(runtime: Runtime, ids: list[int]) -> list[str]:
    """The send job for each id, in order."""
    return [deliver(runtime, message_id) for message_id in ids]


def store_record(sessions: sessionmaker[Session], vault: PhoneVault, record: InboundRecord, raw: str) -> int:
    """Store an event as the Zalo webhooks do (bot.channels.intake); the hand-over is only
    recorded: the test runs the inbound job itself. The stored event's id."""
    stored = store_and_wake_blocking(
        sessions, vault, RecordingDispatcher(), provider=record.provider, kind=record.kind,
        provider_id=record.provider_id, payload=raw, sender=record.sender,
    )  # fmt: skip
    return stored.event_id


def store_bot(runtime: Runtime, update: dict[str, Any]) -> int:
    """What POST /webhooks/zalo/bot stores (the body as Zalo wraps it)."""
    body = {"ok": True, "result": update}
    return store_record(runtime.sessions, runtime.vault, describe_bot_event(body), json.dumps(body))


def store_oa(runtime: Runtime, event: dict[str, Any]) -> int:
    return store_record(runtime.sessions, runtime.vault, describe_oa_event(event), json.dumps(event))


def handle(runtime: Runtime, event_id: int) -> tuple[str, list[str]]:
    """The inbound job, then the sends it queued: (what happened, send results)."""
    result, ids = process(runtime, event_id)
    return result, send(runtime, ids)


def outbox(runtime: Runtime, survey_id: int | None = None) -> list[OutboundMessage]:
    with runtime.sessions() as session:
        query = select(OutboundMessage).order_by(OutboundMessage.id)
        if survey_id is not None:
            query = query.where(OutboundMessage.survey_id == survey_id)
        return list(session.scalars(query))
