"""Cost caps (issue 10 item 4): 1,000 "?" SMS from one number in a minute are all stored, but only
a few are acted on and fewer still are answered; the caps show up as a Prometheus counter."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from redis import Redis
from sqlalchemy import func, select

from config.settings import Settings
from flows.intake import submit_cases
from storage.inbound import store_event
from storage.models import (
    Agency,
    AgencyLevel,
    InboundEvent,
    OutboundMessage,
    OutboxStatus,
    Timer,
    TimerKind,
)
from workers.caps import CapHitsCollector
from workers.inbound import process
from workers.runtime import Runtime
from workers.sending import send_batch
from workers.timers import fire

NOW = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
PHONE = "0912345678"


@pytest.fixture
def runtime(settings: Settings, redis: Redis) -> Runtime:
    capped = settings.model_copy(
        update={"SIPAS_MAX_INBOUND_PER_SENDER_MINUTE": 10, "SIPAS_MAX_SENDS_PER_SURVEY_HOUR": 6}
    )
    built = Runtime.build(capped)
    with built.sessions() as session, session.begin():
        session.add(Agency(code="W", name="UBND phường Hạ Đình", level=AgencyLevel.COMMUNE))
    return built


def _active_survey(runtime: Runtime) -> int:
    case = {"case_id": "C-1", "agency_code": "W", "procedure_code": "1.001612", "phone": PHONE,
            "closed_at": NOW.isoformat()}  # fmt: skip
    with runtime.sessions() as session, session.begin():
        [outcome] = submit_cases(session, runtime.vault, runtime.settings, [case], NOW)
        assert outcome.survey_id is not None
        timer = session.scalars(
            select(Timer).where(Timer.survey_id == outcome.survey_id, Timer.kind == TimerKind.FIRST_MESSAGE)
        ).one()
    fire(runtime, timer.id, NOW)
    return outcome.survey_id


def test_a_thousand_question_marks_cost_a_handful_of_sms(runtime: Runtime, redis: Redis) -> None:
    survey_id = _active_survey(runtime)
    sender_hash = runtime.vault.lookup_hash("+84912345678")
    with runtime.sessions() as session, session.begin():
        events = [
            store_event(
                session,
                provider="kannel",
                kind="mo",
                provider_id=f"q-{n}",
                payload_enc=runtime.vault.encrypt(
                    json.dumps({"id": f"q-{n}", "from": "84912345678", "to": "8040", "text": "?"})
                ),
                sender_hash=sender_hash,
            ).event_id
            for n in range(1000)
        ]
    for n, event_id in enumerate(events):
        process(runtime, event_id, NOW + timedelta(milliseconds=30 * n))  # 30 s: one minute window

    with runtime.sessions() as session:
        results = dict(
            session.execute(select(InboundEvent.result, func.count()).group_by(InboundEvent.result)).all()
        )
        queued = session.scalars(
            select(OutboundMessage.id)
            .where(OutboundMessage.status == OutboxStatus.QUEUED)
            .order_by(OutboundMessage.id)
        ).all()
    assert sum(results.values()) == 1000  # every event stored and processed
    assert results["stored, not acted on: sender over its events a minute"] == 990
    assert results[f"survey {survey_id}"] == 10
    assert 0 < len(queued) <= 10 + 2  # at most one help reply per acted-on event, and the opening

    # No gateway listens here. In one batch: a send that passes the caps is tried (and retried
    # later) and the ones behind it to the same phone wait for it (held, uncounted); one over a
    # cap never reaches the gateway and fails at once.
    outcomes = send_batch(runtime, len(queued), ids=queued)
    with runtime.sessions() as session:
        capped = session.scalar(select(func.count()).where(OutboundMessage.last_error.startswith("cost cap")))
    assert (outcomes.count("retry"), outcomes.count("held")) == (1, 5)
    assert capped == len(queued) - 6  # the survey's 6 sends an hour went, the rest did not

    registry = CollectorRegistry()
    registry.register(CapHitsCollector(redis))
    exposed = generate_latest(registry).decode()
    assert 'sipas_cost_cap_hits_total{cap="inbound_per_sender_minute"} 990.0' in exposed
    assert f'sipas_cost_cap_hits_total{{cap="sends_per_survey_hour"}} {len(queued) - 6}.0' in exposed
