"""The send job on every Zalo route against the simulated Zalo over HTTP, with the real database
and Redis: what is sent, how each failure settles the outbox row, and the fallback to SMS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from bot.channels.outgoing import SendError
from bot.channels.zalo.exceptions import (
    ZaloPermanentError,
    ZaloRateLimited,
    ZaloServerError,
    ZaloTokenInvalid,
    ZaloTokenRefreshError,
    ZaloUnreachable,
)
from bot.channels.zalo.sending import failure_from_zalo
from bot.channels.zalo.simulator.threaded import ThreadedSimulator
from bot.channels.zalo_oa.parse import PROVIDER_OA
from storage.inbound import store_event
from storage.models import (
    Channel,
    InboundEvent,
    OutboundMessage,
    OutboxStatus,
    Route,
    Survey,
    SurveyStatus,
    ZaloOAToken,
)
from tests.zalo.conftest import RATING_TEMPLATE
from tests.zalo.world import SMS_WARD, case, make_agencies, outbox, send, start, submit
from workers.runtime import Runtime

PHONE = "0912345678"
MSISDN = "84912345678"


def _survey(runtime: Runtime, survey_id: int) -> Survey:
    with runtime.sessions() as session:
        survey = session.get(Survey, survey_id)
        assert survey is not None
        return survey


def test_zalo_first_case_with_phone_gets_the_zns_rating(
    zalo_runtime: Runtime, threaded_zalo: ThreadedSimulator
) -> None:
    make_agencies(zalo_runtime)
    survey_id = submit(zalo_runtime, case("ZNS-1", phone=PHONE))
    survey = _survey(zalo_runtime, survey_id)
    assert (survey.channel, survey.zalo_route, survey.flow_name) == (Channel.ZALO, Route.ZNS, "sipas-zalo")

    ids = start(zalo_runtime, survey_id)
    assert len(ids) == 1
    assert send(zalo_runtime, ids) == ["sent"]

    [sent] = threaded_zalo.sim.zns_sent
    survey = _survey(zalo_runtime, survey_id)
    assert sent["phone"] == MSISDN
    assert sent["template_id"] == RATING_TEMPLATE
    assert sent["tracking_id"] == str(survey_id)
    assert sent["template_data"] == {
        "ma_ho_so": "ZNS-1",
        "ten_co_quan": "UBND phường Hạ Đình",
        "ma_khao_sat": survey.start_code,
    }
    [row] = outbox(zalo_runtime, survey_id)
    assert (row.status, row.route, row.provider_id, row.coding) == (
        OutboxStatus.SENT,
        Route.ZNS,
        sent["msg_id"],
        "template",
    )
    assert survey.status is SurveyStatus.ACTIVE


def test_sms_first_agency_stays_on_sms(zalo_runtime: Runtime) -> None:
    make_agencies(zalo_runtime)
    survey = _survey(zalo_runtime, submit(zalo_runtime, case("SMS-1", agency=SMS_WARD, phone=PHONE)))
    assert (survey.channel, survey.zalo_route, survey.flow_name) == (Channel.SMS, None, "sipas-sms")


def test_phone_without_zalo_falls_back_to_sms_once(
    zalo_runtime: Runtime, threaded_zalo: ThreadedSimulator
) -> None:
    threaded_zalo.sim.config.zns_phone_errors[MSISDN] = -118
    make_agencies(zalo_runtime)
    survey_id = submit(zalo_runtime, case("NOZALO-1", phone=PHONE))
    [zns_id] = start(zalo_runtime, survey_id)

    # Kannel is not running in this test: the SMS are stored and queued, not yet sent.
    assert send(zalo_runtime, [zns_id]) == ["fallback"]

    survey = _survey(zalo_runtime, survey_id)
    assert survey.channel is Channel.SMS
    assert survey.zalo_route is None
    assert survey.status is SurveyStatus.ACTIVE
    assert survey.fallback_reason is not None
    assert "-118" in survey.fallback_reason
    # The Zalo flow has SMS texts: the survey keeps its flow and version.
    assert (survey.flow_name, survey.flow_version) == ("sipas-zalo", 1)
    rows = outbox(zalo_runtime, survey_id)
    assert [(r.route, r.status) for r in rows] == [
        (Route.ZNS, OutboxStatus.FAILED),
        (Route.SMS, OutboxStatus.QUEUED),
        (Route.SMS, OutboxStatus.QUEUED),
    ]
    opening, question = rows[1].text, rows[2].text
    assert "NOZALO-1" in opening
    assert "TC" in opening
    assert question.startswith("Cau 1/")
    assert opening.isascii()
    assert question.isascii()
    assert zalo_runtime.vault.decrypt(rows[1].recipient_enc) == "+84912345678"
    # The same failure reported again (a retried job) moves nothing a second time.
    assert send(zalo_runtime, [zns_id]) == ["skipped"]
    assert len(outbox(zalo_runtime, survey_id)) == 3


def test_fallback_none_ends_the_survey_as_failed(
    zalo_runtime: Runtime, threaded_zalo: ThreadedSimulator
) -> None:
    zalo_runtime.settings.SIPAS_CHANNELS_FILE.write_text(
        "agencies:\n  ZP:\n    strategy: zalo_first\n    fallback: none\n", encoding="utf-8"
    )
    threaded_zalo.sim.config.zns_phone_errors[MSISDN] = -114
    make_agencies(zalo_runtime)
    survey_id = submit(zalo_runtime, case("NOFB-1", phone=PHONE))
    assert send(zalo_runtime, start(zalo_runtime, survey_id)) == ["failed"]
    survey = _survey(zalo_runtime, survey_id)
    assert survey.status is SurveyStatus.FAILED
    assert survey.channel is Channel.ZALO
    assert "-114" in (survey.fallback_reason or "")


def test_oa_conversation_survives_an_expired_token(
    zalo_runtime: Runtime, threaded_zalo: ThreadedSimulator
) -> None:
    make_agencies(zalo_runtime)
    survey_id = submit(zalo_runtime, case("OA-1", zalo_user_id="oa-user-1", channel="zalo"))
    ids = start(zalo_runtime, survey_id)
    threaded_zalo.sim.expire_access_tokens()

    assert send(zalo_runtime, ids) == ["sent", "sent"]

    sim = threaded_zalo.sim
    assert [m["user_id"] for m in sim.oa_sent] == ["oa-user-1", "oa-user-1"]
    assert "OA-1" in sim.oa_sent[0]["text"]
    assert "Câu 1/" in sim.oa_sent[1]["text"]
    assert len(sim.token_grants) == 1  # refreshed once, for both messages
    with zalo_runtime.sessions() as session:
        token = session.scalars(select(ZaloOAToken)).one()
        assert token.generation == 2
        assert zalo_runtime.vault.decrypt(token.refresh_token_enc) == sim.token_grants[0]["refresh_token"]
    assert all(r.status is OutboxStatus.SENT and r.route is Route.ZALO_OA for r in outbox(zalo_runtime))


def test_rate_limited_send_is_retried_later(zalo_runtime: Runtime, threaded_zalo: ThreadedSimulator) -> None:
    threaded_zalo.sim.config.oa_rate_limit = 0  # every call answers -32
    make_agencies(zalo_runtime)
    survey_id = submit(zalo_runtime, case("OA-RL", zalo_user_id="oa-user-2"))
    before = datetime.now(UTC)
    # The opening is refused; question 1 waits for it instead of overtaking it (no attempt used).
    assert send(zalo_runtime, start(zalo_runtime, survey_id)) == ["retry", "skipped"]
    opening, question = outbox(zalo_runtime, survey_id)
    assert (opening.status, opening.attempts) == (OutboxStatus.QUEUED, 1)
    assert opening.next_attempt_at >= before + timedelta(seconds=10)
    assert "-32" in (opening.last_error or "")
    assert (question.status, question.attempts) == (OutboxStatus.QUEUED, 0)
    assert question.next_attempt_at == opening.next_attempt_at
    assert _survey(zalo_runtime, survey_id).channel is Channel.ZALO


def test_oa_user_outside_the_window_is_not_written_to(
    zalo_runtime: Runtime, threaded_zalo: ThreadedSimulator
) -> None:
    """The last thing we heard from the user is 8 days old: no OA call, straight to SMS."""
    make_agencies(zalo_runtime)
    survey_id = submit(zalo_runtime, case("OA-WIN", zalo_user_id="oa-user-3", phone=PHONE))
    with zalo_runtime.sessions() as session, session.begin():
        stored = store_event(
            session,
            provider=PROVIDER_OA,
            kind="user_send_text",
            provider_id="user_send_text:old-1",
            payload_enc=zalo_runtime.vault.encrypt("{}"),
            sender_hash=zalo_runtime.vault.lookup_hash("oa-user-3"),
        )
        session.flush()
        event = session.get(InboundEvent, stored.event_id)
        assert event is not None
        event.received_at = datetime.now(UTC) - timedelta(days=8)
        event.processed_at = event.received_at
    ids = start(zalo_runtime, survey_id)
    assert send(zalo_runtime, ids) == ["fallback", "skipped"]
    assert threaded_zalo.sim.oa_sent == []
    survey = _survey(zalo_runtime, survey_id)
    assert survey.channel is Channel.SMS
    assert "interaction window" in (survey.fallback_reason or "")


def test_zalo_failures_map_onto_the_outbox_rules() -> None:
    def flags(failure: SendError) -> tuple[bool, bool, float | None]:
        return failure.retryable, failure.unreachable, failure.retry_after

    assert flags(failure_from_zalo(ZaloUnreachable("blocked", code=403))) == (False, True, None)
    assert flags(failure_from_zalo(ZaloUnreachable("not a follower", code=-213))) == (False, True, None)
    assert flags(failure_from_zalo(ZaloRateLimited("slow down", code=-32, retry_after=30))) == (
        True,
        False,
        30,
    )
    assert flags(failure_from_zalo(ZaloServerError("503", code=503))) == (True, False, None)
    assert flags(failure_from_zalo(ZaloTokenInvalid("still refused", code=-216))) == (False, False, None)
    assert flags(failure_from_zalo(ZaloTokenRefreshError("refresh refused"))) == (False, False, None)
    assert flags(failure_from_zalo(ZaloPermanentError("bad request", code=-201))) == (False, False, None)


def test_failed_sends_leave_other_rows_alone(zalo_runtime: Runtime, threaded_zalo: ThreadedSimulator) -> None:
    """An OA user who is not a follower (-213): the first message fails and the survey moves to
    SMS; the second OA message, still queued, is cancelled rather than sent or failed again."""
    threaded_zalo.sim.config.oa_user_errors["oa-user-4"] = -213
    make_agencies(zalo_runtime)
    survey_id = submit(zalo_runtime, case("OA-213", zalo_user_id="oa-user-4", phone=PHONE))
    first, second = start(zalo_runtime, survey_id)
    assert send(zalo_runtime, [first, second]) == ["fallback", "skipped"]
    with zalo_runtime.sessions() as session:
        row = session.get(OutboundMessage, second)
        assert row is not None
        assert row.status is OutboxStatus.FAILED
        assert row.attempts == 0
        assert "moved to another channel" in (row.last_error or "")
