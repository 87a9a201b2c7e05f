"""A drain batch holds its senders (storage.inbound.try_lock_senders): all asked in one statement,
those another transaction holds left to it, and held until the batch's transaction ends; and it
never waits on a survey row another transaction holds (flows.survey.ActiveSurveys.busy)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from redis import Redis
from sqlalchemy import select

from config.settings import Settings
from flows.survey import start_survey
from flows.survey_rows import lock_survey
from storage.crypto import PhoneVault
from storage.db import session_factory, transaction
from storage.inbound import store_event, try_lock_senders
from storage.models import Answer, InboundEvent
from tests.flows.factories import make_agency, scheduled_survey
from tests.support.services import require_or_skip
from workers.inbound import drain
from workers.runtime import Runtime

NOW = datetime.now(UTC)


def test_senders_held_elsewhere_are_left_and_freed_at_commit(any_db_url: str) -> None:
    sessions = session_factory(any_db_url)
    postgres = any_db_url.startswith("postgresql")
    with sessions() as first, first.begin():
        assert try_lock_senders(first, ["kannel:a", "kannel:b"]) == {"kannel:a", "kannel:b"}
        if postgres:  # SQLite has one writer at a time: a second batch could not even start
            with sessions() as second, second.begin():
                assert try_lock_senders(second, ["kannel:b", "kannel:c", "event:7"]) == {
                    "kannel:c",
                    "event:7",
                }
                # Asking again for what this transaction holds keeps it held.
                assert try_lock_senders(second, ["kannel:c"]) == {"kannel:c"}
    with sessions() as later, later.begin():
        assert try_lock_senders(later, ["kannel:a", "kannel:b", "kannel:c"]) == {
            "kannel:a",
            "kannel:b",
            "kannel:c",
        }
        assert try_lock_senders(later, []) == set()


def test_a_survey_held_by_another_transaction_is_not_waited_for(
    db_url: str, settings: Settings, redis: Redis, vault: PhoneVault
) -> None:
    """A timer (or a send moving the survey to SMS) holds a citizen's survey row: the inbound
    batch leaves that citizen's reply for later instead of waiting with every other row it holds
    (which could deadlock with a timer batch locking in another order), and applies it once the
    row is free; the other citizen's reply goes through at once."""
    require_or_skip(db_url.startswith("postgresql"), "row locks need PostgreSQL (SQLite: one writer)")
    runtime = Runtime.build(settings)
    held_phone, free_phone = "84912000001", "84912000002"
    with transaction(db_url) as session:
        agency = make_agency(session)
        held_id = scheduled_survey(session, vault, phone=held_phone, case_id="HOLD-1", agency=agency).id
        free_id = scheduled_survey(session, vault, phone=free_phone, case_id="HOLD-2", agency=agency).id
    with transaction(db_url) as session:
        start_survey(session, settings, held_id, NOW)
        start_survey(session, settings, free_id, NOW)
    with transaction(db_url) as session:
        held_event, free_event = (
            store_event(
                session,
                provider="kannel",
                kind="mo",
                provider_id=f"mo-{phone}",
                payload_enc=vault.encrypt(json.dumps({"id": f"mo-{phone}", "from": phone, "text": text})),
                sender_hash=vault.lookup_hash(phone),
            ).event_id
            for phone, text in ((held_phone, "5"), (free_phone, "4"))
        )

    sessions = session_factory(db_url)
    with sessions() as timer, timer.begin():
        assert lock_survey(timer, held_id) is not None
        counts = drain(runtime, budget=5)
        with sessions() as session:
            events = {e.id: e for e in session.scalars(select(InboundEvent))}
        assert events[free_event].processed_at is not None
        assert (events[held_event].processed_at, events[held_event].attempts) == (None, 0)
        assert counts["busy"] == 1
    assert drain(runtime, budget=5)["processed"] == 1
    with sessions() as session:
        answers = session.execute(select(Answer.survey_id, Answer.value).order_by(Answer.survey_id)).all()
    assert sorted(answers) == sorted([(held_id, 5), (free_id, 4)])
