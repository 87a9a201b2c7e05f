"""Zalo end to end: `sipas web`, `sipas worker` and `sipas cron` as real processes, PostgreSQL,
Redis, real Kannel for the SMS side, and the simulated Zalo (Bot Platform, OA, OAuth, ZNS) over
HTTP playing both Zalo and the citizen. Wards of quận Thanh Xuân ask on Zalo first."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.channels.zalo.simulator import SimConfig
from bot.channels.zalo.simulator.citizen import bot_update, oa_text_event
from bot.channels.zalo.simulator.threaded import ThreadedSimulator
from storage.models import (
    Answer,
    Channel,
    Comment,
    InboundEvent,
    OutboundMessage,
    OutboxStatus,
    Route,
    Survey,
    SurveyStatus,
    ZaloOAToken,
)
from tests.e2e.conftest import Service
from tests.support.processes import wait_until

pytestmark = [pytest.mark.kannel, pytest.mark.slow]

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
TEMPLATE = "zns-rating-2461"
BOT_SECRET = "e2e-bot-webhook-secret"


@pytest.fixture
def zalo() -> Iterator[ThreadedSimulator]:
    with ThreadedSimulator(SimConfig()) as simulated:
        yield simulated


@pytest.fixture
def service_env(zalo: ThreadedSimulator, tmp_path: Path) -> dict[str, str]:
    """The Zalo half of the configuration: every API at the simulator, Thanh Xuân on Zalo first."""
    rules = tmp_path / "channels.yaml"
    rules.write_text("agencies:\n  HN-TX:\n    strategy: zalo_first\n", encoding="utf-8")
    config, base = zalo.sim.config, zalo.sim.base_url
    return {
        "ZALO_BOT_TOKEN": config.bot_token,
        "ZALO_BOT_SECRET_TOKEN": BOT_SECRET,
        "ZALO_BOT_API_BASE": base,
        "ZALO_OA_APP_ID": config.app_id,
        "ZALO_OA_SECRET_KEY": config.oa_secret_key,
        "ZALO_APP_SECRET": config.app_secret,
        "ZALO_OA_API_BASE": base,
        "ZALO_OAUTH_BASE": base,
        "ZNS_API_BASE": base,
        "ZNS_RATING_TEMPLATE_ID": TEMPLATE,
        "SIPAS_CHANNELS_FILE": str(rules),
    }


@pytest.fixture
def zalo_service(service: Service, zalo: ThreadedSimulator) -> Service:
    """The operator's set-up, by the documented commands: OA token stored, bot webhook set."""
    zalo.sim.config.oa_webhook_url = f"{service.base_url}/webhooks/zalo/oa"
    access, refresh = zalo.sim.issue_tokens()
    service.sipas(
        "zalo",
        "store-oa-token",
        "--refresh-token",
        refresh,
        "--access-token",
        access,
        "--expires-in",
        "90000",
    )
    answer = json.loads(service.sipas("zalo", "set-webhook", f"{service.base_url}/webhooks/zalo/bot"))
    assert answer["url"] == f"{service.base_url}/webhooks/zalo/bot"
    return service


def _case(case_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "case_id": case_id,
        "agency_code": "HN-TX-HD",
        "procedure_code": "1.001612",
        "procedure_name": "Đăng ký khai sinh",
        "closed_at": datetime.now(UTC).astimezone(HCM).isoformat(),
        **fields,
    }


def _scheduled(service: Service, body: dict[str, Any]) -> int:
    response = service.post_cases(body)
    assert response.status_code == 202, response.text
    [result] = response.json()["results"]
    assert result["outcome"] == "scheduled", result
    survey_id: int = result["survey_id"]
    return survey_id


def _answers(sessions: sessionmaker[Session], survey_id: int) -> dict[str, int | str | None]:
    with sessions() as session:
        rows = session.scalars(select(Answer).where(Answer.survey_id == survey_id)).all()
        return {a.question_key: a.value if a.value is not None else a.text_value for a in rows}


def _survey(sessions: sessionmaker[Session], survey_id: int) -> Survey:
    with sessions() as session:
        survey = session.get(Survey, survey_id)
        assert survey is not None
        return survey


def _wait_count(items: list[Any], n: int, what: str) -> None:
    wait_until(lambda: len(items) >= n, timeout=60, what=what)


def test_zns_rating_by_webhook_and_by_reconciliation_each_stored_once(
    zalo_service: Service, zalo: ThreadedSimulator, sessions: sessionmaker[Session]
) -> None:
    rated = _scheduled(zalo_service, _case("TX-ZNS-1", phone="0912 345 678"))
    missed = _scheduled(zalo_service, _case("TX-ZNS-2", phone="0912 345 679"))
    sent = zalo.sim.zns_sent
    _wait_count(sent, 2, "two ZNS rating templates")
    by_survey = {int(m["tracking_id"]): m for m in sent}
    assert by_survey[rated]["phone"] == "84912345678"
    assert by_survey[rated]["template_id"] == TEMPLATE
    assert by_survey[rated]["template_data"]["ma_ho_so"] == "TX-ZNS-1"

    # The citizen gives 4 stars and a note; Zalo posts user_feedback (signed) to the web process.
    event = zalo.sim.add_rating(by_survey[rated]["msg_id"], 4, note="Cán bộ hướng dẫn tận tình")
    assert zalo.call(zalo.sim.deliver_oa_event(None, event)) == (200, {"status": "stored"})
    wait_until(lambda: _answers(sessions, rated) == {"overall": 4}, timeout=60, what="the rating stored")
    with sessions() as session:
        notes = session.scalars(select(Comment.text).where(Comment.survey_id == rated)).all()
    assert notes == ["Cán bộ hướng dẫn tận tình"]
    # Zalo delivers the same event again: acknowledged, not processed again.
    assert zalo.call(zalo.sim.deliver_oa_event(None, event)) == (200, {"status": "duplicate"})

    # The second citizen rates while the webhook is lost; the nightly job finds it (run by hand
    # for today), once, and a second run stores nothing.
    zalo.sim.add_rating(by_survey[missed]["msg_id"], 2, note="Phải chờ lâu")
    today = datetime.now(UTC).astimezone(HCM).date().isoformat()
    first = json.loads(zalo_service.sipas("zalo", "reconcile-ratings", "--date", today))
    assert first == {"day": today, "fetched": 2, "stored": 1, "duplicates": 1}
    second = json.loads(zalo_service.sipas("zalo", "reconcile-ratings", "--date", today))
    assert second == {"day": today, "fetched": 2, "stored": 0, "duplicates": 2}
    assert _answers(sessions, missed) == {"overall": 2}
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Answer)) == 2
        assert session.scalar(select(func.count()).select_from(Comment)) == 2
        kinds = session.scalars(select(InboundEvent.kind)).all()
    assert sorted(kinds) == ["user_feedback", "user_feedback"]


def test_citizen_messages_the_bot_and_the_zalo_flow_runs_to_the_end(
    zalo_service: Service, zalo: ThreadedSimulator, sessions: sessionmaker[Session]
) -> None:
    survey_id = _scheduled(zalo_service, _case("TX-BOT-1", phone="0987 000 111"))
    _wait_count(zalo.sim.zns_sent, 1, "the ZNS rating template")
    code = zalo.sim.zns_sent[0]["template_data"]["ma_khao_sat"]
    bot = zalo.sim.bot_sent

    def say(text: str, *, message_id: str | None = None) -> tuple[int, Any]:
        update = bot_update("zalo-chat-77", text, message_id=message_id)
        return zalo.call(zalo.sim.deliver_bot_event(None, update))

    assert say(f"Mã khảo sát: {code}") == (200, {"status": "stored"})
    _wait_count(bot, 2, "the opening and the first question on the bot")
    assert "TX-BOT-1" in bot[0]["text"]
    assert bot[1]["text"].startswith("Câu 1/")

    # The same message delivered twice (Zalo retries when our answer is slow): processed once.
    assert say("5", message_id="zalo-msg-0001") == (200, {"status": "stored"})
    assert say("5", message_id="zalo-msg-0001") == (200, {"status": "duplicate"})
    _wait_count(bot, 3, "question 2")
    said = 2
    for reply in ("hài lòng", "rất hài lòng"):
        said += 1
        say(reply)
        _wait_count(bot, said + 1, f"the question after {reply!r}")
    # The rest of the Zalo flow (what to improve, a comment, the integrity question): "1" each.
    while not bot[-1]["text"].startswith("Cảm ơn Ông/Bà") and said < 12:
        said += 1
        say("1")
        _wait_count(bot, said + 1, f"the answer to message {said}")
    wait_until(
        lambda: _survey(sessions, survey_id).status is SurveyStatus.COMPLETED, timeout=60, what="completion"
    )
    assert bot[-1]["text"].startswith("Cảm ơn Ông/Bà")
    assert len(bot) == said + 1  # one message per reply, plus the opening
    answers = _answers(sessions, survey_id)
    assert {k: answers[k] for k in ("overall", "cong_chuc", "ket_qua")} == {
        "overall": 5,
        "cong_chuc": 4,
        "ket_qua": 5,
    }
    survey = _survey(sessions, survey_id)
    assert (survey.channel, survey.zalo_route) == (Channel.ZALO, Route.ZALO_BOT)
    with sessions() as session:
        stored = session.scalar(
            select(func.count()).select_from(InboundEvent).where(InboundEvent.provider == "zalo_bot")
        )
    assert stored == said


def test_oa_token_expires_mid_survey_refreshed_once_nothing_lost(
    zalo_service: Service, zalo: ThreadedSimulator, sessions: sessionmaker[Session]
) -> None:
    survey_id = _scheduled(zalo_service, _case("TX-OA-1", zalo_user_id="oa-user-3141", channel="zalo"))
    oa = zalo.sim.oa_sent
    config = zalo.sim.config
    _wait_count(oa, 2, "the opening and question 1 on the OA")

    def reply(text: str) -> None:
        event = oa_text_event(config.app_id, config.oa_id, "oa-user-3141", text)
        assert zalo.call(zalo.sim.deliver_oa_event(None, event)) == (200, {"status": "stored"})

    reply("5")
    _wait_count(oa, 3, "question 2")
    zalo.sim.expire_access_tokens()  # 25 hours later, in the middle of the survey
    reply("4")
    _wait_count(oa, 4, "question 3 after the token refresh")
    reply("5")
    _wait_count(oa, 5, "question 4")
    assert len(zalo.sim.token_grants) == 1

    def statuses() -> list[OutboxStatus]:
        with sessions() as session:
            return list(
                session.scalars(select(OutboundMessage.status).where(OutboundMessage.survey_id == survey_id))
            )

    # The simulator has the fifth message as soon as the request reaches it; the worker records
    # `sent` just after, in its own transaction.
    wait_until(
        lambda: statuses() == [OutboxStatus.SENT] * 5, timeout=30, what="all five messages recorded sent"
    )
    with sessions() as session:
        assert session.scalars(select(ZaloOAToken)).one().generation == 2
    assert _answers(sessions, survey_id) == {"overall": 5, "cong_chuc": 4, "ket_qua": 5}
    assert [m["user_id"] for m in oa] == ["oa-user-3141"] * 5


def test_phone_without_zalo_continues_by_sms_through_kannel(
    zalo_service: Service, zalo: ThreadedSimulator, sessions: sessionmaker[Session]
) -> None:
    zalo.sim.config.zns_phone_errors["84977123456"] = -118
    survey_id = _scheduled(zalo_service, _case("TX-NOZALO-1", phone="0977 123 456"))
    phone = zalo_service.kannel.phone

    opening = phone.wait_for_mt(to="+84977123456", timeout=60)
    assert "TX-NOZALO-1" in opening.text
    assert "TC" in opening.text
    question = phone.wait_for_mt(to="+84977123456", timeout=60)
    assert question.text.startswith("Cau 1/")
    survey = _survey(sessions, survey_id)
    assert survey.channel is Channel.SMS
    assert survey.fallback_reason is not None
    assert "-118" in survey.fallback_reason

    phone.send_mo("84977123456", "4")
    assert phone.wait_for_mt(to="+84977123456", timeout=60).text.startswith("Cau 2/")
    assert _answers(sessions, survey_id) == {"overall": 4}
    assert zalo.sim.zns_sent == []  # Zalo refused it: nothing reached the citizen there
    with sessions() as session:
        routes = session.scalars(
            select(OutboundMessage.route)
            .where(OutboundMessage.survey_id == survey_id)
            .order_by(OutboundMessage.id)
        ).all()
    assert routes == [Route.ZNS, Route.SMS, Route.SMS, Route.SMS]
