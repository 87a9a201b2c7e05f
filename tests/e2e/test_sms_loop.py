"""One closed case travels the whole path over SMS through a real Kannel gateway, and nothing
accepted is lost when workers are killed and servers restarted."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from storage.models import Answer, InboundEvent, OutboundMessage, OutboxStatus, Survey, SurveyStatus
from tests.e2e.conftest import Service
from tests.support.processes import wait_until

pytestmark = [pytest.mark.kannel, pytest.mark.slow]

HCM = ZoneInfo("Asia/Ho_Chi_Minh")


def _case(case_id: str, phone: str, agency: str = "HN-TX-HD") -> dict[str, object]:
    return {
        "case_id": case_id,
        "agency_code": agency,
        "procedure_code": "1.001612",
        "procedure_name": "Đăng ký khai sinh",
        "phone": phone,
        "closed_at": datetime.now(UTC).astimezone(HCM).isoformat(),
        "due_at": datetime(2099, 1, 1, tzinfo=HCM).isoformat(),
    }


def test_closed_case_to_scores(service: Service, sessions: sessionmaker[Session]) -> None:
    phone = service.kannel.phone
    response = service.post_cases(_case("HD-2026-000123", "0912 345 678"))
    assert response.status_code == 202, response.text
    [result] = response.json()["results"]
    assert result["outcome"] == "scheduled"
    survey_id = result["survey_id"]

    opening = phone.wait_for_mt(to="+84912345678", timeout=30)
    assert "HD-2026-000123" in opening.text
    assert "TC" in opening.text
    q1 = phone.wait_for_mt(to="+84912345678", timeout=30)
    assert q1.text.startswith("Cau 1/3")

    phone.send_mo("84912345678", "5")
    assert phone.wait_for_mt(to="+84912345678", timeout=30).text.startswith("Cau 2/3")
    phone.send_mo("84912345678", "4")
    assert phone.wait_for_mt(to="+84912345678", timeout=30).text.startswith("Cau 3/3")
    phone.send_mo("84912345678", " 3.")
    assert phone.wait_for_mt(to="+84912345678", timeout=30).text.startswith("Cam on")

    with sessions() as session:
        answers = {a.question_key: (a.criterion_code, a.value) for a in session.scalars(select(Answer))}
        assert answers == {
            "overall": ("overall", 5),
            "cong_chuc": ("cong_chuc", 4),
            "ket_qua": ("ket_qua", 3),
        }
        assert session.get(Survey, survey_id).status is SurveyStatus.COMPLETED  # type: ignore[union-attr]

    def all_delivered() -> bool:
        with sessions() as session:
            statuses = session.scalars(
                select(OutboundMessage.status).where(OutboundMessage.survey_id == survey_id)
            ).all()
        return len(statuses) == 5 and all(s is OutboxStatus.DELIVERED for s in statuses)

    wait_until(all_delivered, timeout=30, what="delivery reports for all five messages")

    day = datetime.now(UTC).astimezone(HCM).date().isoformat()
    service.sipas("scores", "compute", "--date", day)
    rows = {
        r["agency_code"]: r
        for r in json.loads(service.sipas("scores", "show", "--period", day, "--format", "json"))
    }
    ward = rows["HN-TX-HD"]
    assert ward["n_surveys_sent"] == 1
    assert ward["n_responses"] == 1
    assert ward["response_rate"] == 100.0
    assert ward["overall_satisfaction"] == 100.0
    assert ward["criteria"]["overall"] == {"index": 100.0, "n": 1, "ci95": [20.65, 100.0]}
    assert ward["criteria"]["cong_chuc"]["index"] == 100.0
    assert ward["criteria"]["ket_qua"]["index"] == 0.0
    assert ward["elements"] == {
        "cong_chuc": 100.0,
        "ket_qua": 0.0,
        "tiep_can": None,
        "thu_tuc": None,
        "phan_anh": None,
    }
    assert ward["sipas_index"] == 50.0
    assert ward["on_time_rate"] == 100.0
    assert ward["rate_766"] == 100.0
    assert ward["suppressed"] is False
    # The district and the city are roll-ups of the one ward that has cases.
    assert rows["HN-TX"]["sipas_index"] == 50.0
    assert rows["HN"]["overall_satisfaction"] == 100.0


def test_nothing_lost_when_worker_killed_and_redis_restarted(
    service: Service, sessions: sessionmaker[Session]
) -> None:
    phone = service.kannel.phone
    citizens = [f"+849{n:08d}" for n in range(1, 21)]
    body = {"cases": [_case(f"TX-KILL-{n:03d}", number) for n, number in enumerate(citizens)]}
    assert service.post_cases(body).status_code == 202
    for number in citizens:
        phone.wait_for_mt(to=number, timeout=60)  # opening
        phone.wait_for_mt(to=number, timeout=60)  # question 1

    # The worker dies; replies keep arriving and are stored by the web process.
    service.worker.kill()
    for number in citizens:
        phone.send_mo(number.lstrip("+"), "5")

    def events_stored() -> bool:
        with sessions() as session:
            return (
                session.scalar(
                    select(func.count()).select_from(InboundEvent).where(InboundEvent.kind == "mo")
                )
                == 20
            )

    wait_until(events_stored, timeout=60, what="20 replies stored")

    # Redis restarts empty: every queued job is gone. Cron and web reconnect (cron is restarted
    # like a supervisor would after it loses its connection).
    service.cron.stop()
    service.redis.stop()
    service.redis.start()
    service.cron.start()

    # A worker starts and is killed while it works through the recovered replies.
    service.worker.start()

    def some_processed() -> bool:
        with sessions() as session:
            return (session.scalar(select(func.count()).select_from(Answer)) or 0) >= 3

    wait_until(some_processed, timeout=60, what="the first replies processed")
    service.worker.kill()
    service.worker.start()

    def all_answered() -> bool:
        with sessions() as session:
            return session.scalar(select(func.count()).select_from(Answer)) == 20

    wait_until(all_answered, timeout=120, what="all 20 replies processed")

    def all_sent() -> bool:
        with sessions() as session:
            pending = session.scalar(
                select(func.count())
                .select_from(OutboundMessage)
                .where(OutboundMessage.status.in_([OutboxStatus.QUEUED, OutboxStatus.SENDING]))
            )
        return pending == 0

    wait_until(all_sent, timeout=60, what="the outbox to drain")
    # A send the kill interrupted is `unknown`, never resent by itself: Kannel's delivery report
    # settles those it took; the operator resends those no report ever mentioned.
    service.sipas("outbox", "resolve", "--resend", "--unreported-for", "10")
    for number in citizens:
        assert phone.wait_for_mt(to=number, timeout=60).text.startswith("Cau 2/3")
    wait_until(all_sent, timeout=60, what="the outbox to drain")
    # The replies' wake-ups died with Redis: it was the sweep that found the stored events again.
    assert "sweep woke the inbound drain" in service.worker.output()
    with sessions() as session:
        events = session.scalars(select(InboundEvent).where(InboundEvent.kind == "mo")).all()
        assert all(e.processed_at is not None for e in events)
        assert session.scalar(select(func.count()).select_from(Answer)) == 20
        messages = session.scalars(select(OutboundMessage)).all()
        # Opening, question 1 and question 2 for each citizen: stored once each.
        assert len(messages) == 60
    # Each message reached the phone exactly once, kills and Redis restart notwithstanding.
    extra = phone.pending_mt()
    assert extra == [], [m.text for m in extra]


def test_send_retried_after_gateway_outage(service: Service, sessions: sessionmaker[Session]) -> None:
    phone = service.kannel.phone
    service.kannel.stop()
    assert (
        service.post_cases(_case("TX-OUTAGE-1", "0987 654 321")).json()["results"][0]["outcome"]
        == "scheduled"
    )

    def failed_once() -> bool:
        with sessions() as session:
            rows = session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)).all()
        return len(rows) == 2 and rows[0].attempts >= 1 and all(r.status is OutboxStatus.QUEUED for r in rows)

    wait_until(failed_once, timeout=60, what="the opening to fail against the stopped gateway")
    with sessions() as session:
        opening, question = session.scalars(select(OutboundMessage).order_by(OutboundMessage.id))
        assert "connect" in (opening.last_error or "").lower()
        # The question never overtakes its opening: it waits, without using an attempt.
        assert question.attempts == 0
        assert "held behind" in (question.last_error or "")
    service.kannel.start()

    first = phone.wait_for_mt(to="+84987654321", timeout=90)
    second = phone.wait_for_mt(to="+84987654321", timeout=90)
    assert second.text.startswith("Cau 1/3"), (first.text, second.text)

    def delivered() -> bool:
        with sessions() as session:
            rows = session.scalars(select(OutboundMessage)).all()
        return all(r.status is OutboxStatus.DELIVERED for r in rows)

    wait_until(delivered, timeout=60, what="delivery reports after the outage")
    with sessions() as session:
        attempts = [r.attempts for r in session.scalars(select(OutboundMessage).order_by(OutboundMessage.id))]
    assert attempts[0] >= 2
    assert attempts[1] == 1
    assert phone.pending_mt() == []  # each message arrived once
