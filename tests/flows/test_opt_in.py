"""Opting back in (issue 11): a refusal by SMS, `DK` and its confirmation through the real Kannel
MO webhook and the real inbound job (database, Redis), then the next case is surveyed again;
`sipas opt-outs list|remove`; every lift in the audit log. The same walk over a real Kannel gateway
is tests/e2e/test_opt_in.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
from click.testing import CliRunner
from redis import Redis
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from flows.intake import OutcomeKind, submit_cases
from flows.opt_in import TEXTS, OptInStep
from flows.templates import gsm7_length, is_gsm7
from storage import audit
from storage.crypto import PhoneVault
from storage.models import (
    Agency,
    AgencyLevel,
    AuditEntry,
    InboundEvent,
    OptOut,
    OutboundMessage,
    Timer,
    TimerKind,
)
from tests.conftest import SECRET_KEY
from tests.support.app import Client, RecordingDispatcher
from workers.cli import cli
from workers.inbound import process
from workers.runtime import Runtime
from workers.timers import fire

MO = "/webhooks/sms/kannel"
TOKEN = "mo-token-test-0123"  # tests/conftest.py settings
NOW = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
PHONE, MSISDN, E164 = "0912 345 678", "84912345678", "+84912345678"
_ids = count(1)


@pytest.fixture
def runtime(settings: Settings, redis: Redis) -> Runtime:
    """The worker's runtime on the test database and Redis; no frequency cap, so the case closed
    right after opting back in is surveyed (the cap is a separate rule, tested in tests/intake)."""
    built = Runtime.build(settings.model_copy(update={"SIPAS_FREQUENCY_CAP_DAYS": 0}))
    with built.sessions() as session, session.begin():
        session.add(Agency(code="W", name="UBND phường Hạ Đình", level=AgencyLevel.COMMUNE))
    return built


def _close_case(runtime: Runtime, case_id: str, at: datetime) -> OutcomeKind:
    case = {"case_id": case_id, "agency_code": "W", "procedure_code": "1.001612", "phone": PHONE,
            "closed_at": at.isoformat()}  # fmt: skip
    with runtime.sessions() as session, session.begin():
        [outcome] = submit_cases(session, runtime.vault, runtime.settings, [case], at)
        timers = session.scalars(
            select(Timer.id).where(
                Timer.survey_id == outcome.survey_id, Timer.kind == TimerKind.FIRST_MESSAGE
            )
        ).all()
    for timer_id in timers:
        fire(runtime, timer_id, at)
    return outcome.outcome


async def _sms(
    client: Client, dispatcher: RecordingDispatcher, runtime: Runtime, text: str, at: datetime
) -> tuple[str, list[str]]:
    """One citizen SMS through the Kannel MO webhook, then the inbound job: (result, replies)."""
    params = {"token": TOKEN, "from": MSISDN, "to": "8040", "text": text, "id": f"mo-{next(_ids)}",
              "ts": "2026-11-20 03:00:00"}  # fmt: skip
    response = await client.get(MO, params=params)
    assert response.status == 200
    result, outbox_ids = process(runtime, dispatcher.inbound[-1], at)
    with runtime.sessions() as session:
        messages = session.scalars(select(OutboundMessage).where(OutboundMessage.id.in_(outbox_ids))).all()
        assert all(runtime.vault.decrypt(m.recipient_enc) == E164 for m in messages)
        return result, [m.text for m in messages]


def _refused(runtime: Runtime) -> OptOut | None:
    with runtime.sessions() as session:
        return session.get(OptOut, runtime.vault.lookup_hash(E164))


async def test_opt_out_opt_back_in_and_get_the_next_survey(
    client: Client, dispatcher: RecordingDispatcher, runtime: Runtime, sessions: sessionmaker[Session]
) -> None:
    assert _close_case(runtime, "C-1", NOW) is OutcomeKind.SCHEDULED
    result, [confirmation] = await _sms(client, dispatcher, runtime, "TC", NOW)
    assert result.startswith("survey ")
    assert "DK" in confirmation  # the refusal says how to come back
    assert _close_case(runtime, "C-2", NOW + timedelta(minutes=1)) is OutcomeKind.OPTED_OUT

    result, [asked] = await _sms(client, dispatcher, runtime, "DK", NOW + timedelta(minutes=2))
    assert (result, asked) == (OptInStep.CONFIRM_ASKED.value, TEXTS[OptInStep.CONFIRM_ASKED]["vi"])
    assert _refused(runtime) is not None  # not lifted before the confirmation
    assert _close_case(runtime, "C-3", NOW + timedelta(minutes=3)) is OutcomeKind.OPTED_OUT

    result, [back] = await _sms(client, dispatcher, runtime, "co", NOW + timedelta(minutes=4))
    assert (result, back) == (OptInStep.REJOINED.value, TEXTS[OptInStep.REJOINED]["vi"])
    assert _refused(runtime) is None
    with sessions() as session:
        [entry] = session.scalars(select(AuditEntry)).all()
        assert (entry.actor, entry.action, entry.after) == ("citizen:sms", "opt_outs.rejoin", None)
        assert entry.target == f"opt_out:{runtime.vault.lookup_hash(E164)[:12]}"
        assert entry.before is not None
        assert entry.before["source"] == "sms"
        assert "912345678" not in json.dumps([entry.target, entry.before])
        assert audit.verify(session) is None

    assert _close_case(runtime, "C-4", NOW + timedelta(minutes=5)) is OutcomeKind.SCHEDULED
    with sessions() as session:
        opening = session.scalars(select(OutboundMessage.text).order_by(OutboundMessage.id.desc())).all()
    assert any("C-4" in text for text in opening)


async def test_the_confirmation_must_come_within_a_day(
    client: Client, dispatcher: RecordingDispatcher, runtime: Runtime
) -> None:
    _close_case(runtime, "C-1", NOW)
    await _sms(client, dispatcher, runtime, "TC", NOW)
    result, _ = await _sms(client, dispatcher, runtime, "Dang ky", NOW + timedelta(hours=1))
    assert result == OptInStep.CONFIRM_ASKED.value
    late = NOW + timedelta(hours=26)
    # Too late to confirm: kept in the unit's inbox for staff, nothing lifted.
    assert (await _sms(client, dispatcher, runtime, "CO", late))[0].startswith("inbox ")
    result, _ = await _sms(client, dispatcher, runtime, "DK", late)
    assert result == OptInStep.CONFIRM_ASKED.value  # asked again, not lifted
    assert _refused(runtime) is not None
    result, _ = await _sms(client, dispatcher, runtime, "dk", late + timedelta(minutes=1))
    assert result == OptInStep.REJOINED.value


async def test_other_texts_from_a_refused_number_lift_nothing(
    client: Client, dispatcher: RecordingDispatcher, runtime: Runtime
) -> None:
    _close_case(runtime, "C-1", NOW)
    await _sms(client, dispatcher, runtime, "TC", NOW)
    for text in ("CO", "5", "co, toi muon nhan lai", "hai long"):
        result, replies = await _sms(client, dispatcher, runtime, text, NOW + timedelta(minutes=1))
        # Kept in the unit's inbox (flows.inbox), and a refused number gets no automatic reply.
        assert result.startswith("inbox "), text
        assert replies == [], text
    await _sms(client, dispatcher, runtime, "DK", NOW + timedelta(minutes=2))
    # A yes with words, or anything else, does not confirm either.
    assert (await _sms(client, dispatcher, runtime, "co, 5", NOW + timedelta(minutes=3)))[1] == []
    assert _refused(runtime) is not None


async def test_english_keywords_get_english_replies_and_a_number_not_refused_a_notice(
    client: Client, dispatcher: RecordingDispatcher, runtime: Runtime
) -> None:
    result, [notice] = await _sms(client, dispatcher, runtime, "DK", NOW)
    assert (result, notice) == (OptInStep.NOT_OPTED_OUT.value, TEXTS[OptInStep.NOT_OPTED_OUT]["vi"])
    _close_case(runtime, "C-1", NOW)
    await _sms(client, dispatcher, runtime, "STOP", NOW)
    assert (await _sms(client, dispatcher, runtime, "START", NOW))[1] == [
        TEXTS[OptInStep.CONFIRM_ASKED]["en"]
    ]
    assert (await _sms(client, dispatcher, runtime, "yes", NOW))[1] == [TEXTS[OptInStep.REJOINED]["en"]]


async def test_a_retried_job_adds_no_second_reply(
    client: Client, dispatcher: RecordingDispatcher, runtime: Runtime
) -> None:
    _close_case(runtime, "C-1", NOW)
    await _sms(client, dispatcher, runtime, "TC", NOW)
    await _sms(client, dispatcher, runtime, "DK", NOW)
    assert process(runtime, dispatcher.inbound[-1], NOW) == ("already processed", [])
    with runtime.sessions() as session:
        results = session.scalars(select(InboundEvent.result).order_by(InboundEvent.id)).all()
    assert results[-1] == OptInStep.CONFIRM_ASKED.value


@pytest.mark.parametrize("step", list(OptInStep))
@pytest.mark.parametrize("language", ["vi", "en"])
def test_replies_fit_one_unaccented_sms(step: OptInStep, language: str) -> None:
    text = TEXTS[step][language]
    assert text.isascii()
    assert is_gsm7(text)
    assert gsm7_length(text) <= 160


def test_cli_lists_and_removes_a_refusal(
    runtime: Runtime, sessions: sessionmaker[Session], db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("SIPAS_SECRET_KEY", SECRET_KEY)
    vault = PhoneVault(SECRET_KEY)
    with sessions() as session, session.begin():
        session.add(OptOut(phone_hash=vault.lookup_hash(E164), source="sms", created_at=NOW))
    runner = CliRunner()
    listed = runner.invoke(cli, ["opt-outs", "list", "--format", "json"])
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.stdout)
    assert row["phone_hash"] == vault.lookup_hash(E164)[:12]
    assert (row["source"], row["opt_in_asked_at"]) == ("sms", None)
    assert row["created_at"].endswith("+07:00")  # shown in Asia/Ho_Chi_Minh

    missing = runner.invoke(cli, ["opt-outs", "remove", "0987 654 321"])
    assert missing.exit_code == 1
    assert "has not refused" in missing.output
    assert runner.invoke(cli, ["opt-outs", "remove", "12345"]).exit_code == 2

    removed = runner.invoke(cli, ["opt-outs", "remove", PHONE])
    assert removed.exit_code == 0, removed.output
    assert runner.invoke(cli, ["opt-outs", "list"]).stdout.strip() == "0 refusal(s)"
    with sessions() as session:
        [entry] = session.scalars(select(AuditEntry)).all()
        assert entry.action == "opt_outs.remove"
        assert entry.actor.startswith("cli:")
        assert audit.verify(session) is None


async def test_a_refusal_after_dk_cancels_the_pending_opt_in(
    client: Client, dispatcher: RecordingDispatcher, runtime: Runtime
) -> None:
    _close_case(runtime, "C-1", NOW)
    await _sms(client, dispatcher, runtime, "TC", NOW)
    await _sms(client, dispatcher, runtime, "DK", NOW + timedelta(minutes=1))
    await _sms(client, dispatcher, runtime, "TC", NOW + timedelta(minutes=2))
    result, replies = await _sms(client, dispatcher, runtime, "CO", NOW + timedelta(minutes=3))
    assert result.startswith("inbox ")  # an ordinary message now: nothing lifted, no reply
    assert replies == []
    refusal = _refused(runtime)
    assert refusal is not None
    assert refusal.rejoin_requested_at is None
