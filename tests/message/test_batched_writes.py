"""The worker's batched writes (issue 9 items 1 and 2), on SQLite and PostgreSQL: a batch's
outbox rows in one INSERT that keeps each dedupe key once, staged messages that belong to their
transaction (and savepoint), sent and held rows settled in one statement each, and an inbound
batch without a savepoint per event that still isolates a poison event, including one whose
write the database refuses only when the batch is written."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from redis import Redis
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from flows.survey import start_survey
from storage import outbox
from storage.crypto import PhoneVault
from storage.db import session_factory, transaction
from storage.inbound import store_event
from storage.models import Answer, Channel, Comment, InboundEvent, OutboundMessage, OutboxStatus
from tests.flows.factories import make_agency, scheduled_survey
from tests.support.services import require_or_skip
from workers.inbound import drain
from workers.runtime import Runtime

NOW = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)


def _message(key: str, vault: PhoneVault, text: str = "Cau 1") -> outbox.NewMessage:
    return outbox.NewMessage(
        dedupe_key=key,
        channel=Channel.SMS,
        recipient_enc=vault.encrypt("+84912345678"),
        text=text,
        not_before=NOW,
    )


@pytest.fixture
def sessions(any_db_url: str) -> sessionmaker[Session]:
    return session_factory(any_db_url)


def test_add_messages_stores_each_key_once_and_returns_ids_in_order(
    sessions: sessionmaker[Session], vault: PhoneVault
) -> None:
    with sessions() as session, session.begin():
        [first] = outbox.add_messages(session, [_message("k:1", vault, "first")])
    with sessions() as session, session.begin():
        ids = outbox.add_messages(
            session,
            [_message("k:2", vault), _message("k:1", vault, "a twin"), _message("k:3", vault)],
        )
    assert ids[1] == first
    assert len(set(ids)) == 3
    with sessions() as session:
        rows = {m.dedupe_key: m for m in session.scalars(select(OutboundMessage))}
    assert sorted(rows) == ["k:1", "k:2", "k:3"]
    assert rows["k:1"].text == "first"  # the key stored first keeps its row
    assert {m.status for m in rows.values()} == {OutboxStatus.QUEUED}
    assert {m.next_attempt_at for m in rows.values()} == {NOW}
    assert [rows["k:2"].id, rows["k:1"].id, rows["k:3"].id] == ids


def test_staged_messages_belong_to_their_transaction_and_savepoint(
    sessions: sessionmaker[Session], vault: PhoneVault
) -> None:
    with sessions() as session, session.begin():
        outbox.stage(session, [_message("s:kept", vault)])
        with pytest.raises(RuntimeError), session.begin_nested():
            outbox.stage(session, [_message("s:undone", vault)])
            raise RuntimeError
        with session.begin_nested():
            outbox.stage(session, [_message("s:savepoint-committed", vault)])
        # Not written by the savepoint's commit: one statement for the whole transaction.
        assert session.scalars(select(OutboundMessage.dedupe_key)).all() == []
    with pytest.raises(RuntimeError), sessions() as session, session.begin():
        outbox.stage(session, [_message("s:rolled-back", vault)])
        raise RuntimeError
    with sessions() as session:
        stored = sorted(session.scalars(select(OutboundMessage.dedupe_key)))
        # A commit writes what is left staged: nothing staged is lost, nothing rolled back stays.
        assert stored == ["s:kept", "s:savepoint-committed"]
        assert outbox.write_staged(session) == []


def test_sent_and_held_rows_are_settled_in_one_statement_each(
    sessions: sessionmaker[Session], vault: PhoneVault
) -> None:
    with sessions() as session, session.begin():
        ids = outbox.add_messages(session, [_message(f"b:{n}", vault) for n in range(4)])
    with sessions() as session, session.begin():
        claims = outbox.claim_due(session, NOW, 10)
    token = claims[0].token
    with sessions() as session, session.begin():  # a delivery report for the first came first
        assert outbox.apply_delivery_reports(
            session, [outbox.Report(ids[0], outbox.Delivery.DELIVERED)], NOW
        ) == [True]
    later = NOW + timedelta(minutes=5)
    with sessions() as session, session.begin():
        settled = outbox.mark_sent(
            session,
            token,
            [outbox.SentRow(ids[0], "p0", 1, "gsm7"), outbox.SentRow(ids[1], "p1", 2, "ucs2")],
            NOW,
        )
        released = outbox.release(
            session, token, [outbox.Release(ids[2], later, "held"), outbox.Release(ids[3], NOW, "held too")]
        )
        assert outbox.mark_sent(session, "not-our-claim", [outbox.SentRow(ids[2], "x", 1, "gsm7")], NOW) == []
    assert settled == ids[:2]
    assert released == ids[2:]
    with sessions() as session:
        rows = {m.id: m for m in session.scalars(select(OutboundMessage))}
    assert rows[ids[0]].status is OutboxStatus.DELIVERED  # never downgraded by the late answer
    assert (rows[ids[1]].status, rows[ids[1]].provider_id, rows[ids[1]].segments) == (
        OutboxStatus.SENT,
        "p1",
        2,
    )
    assert [(rows[i].status, rows[i].attempts, rows[i].claim_token) for i in ids[2:]] == [
        (OutboxStatus.QUEUED, 0, None)
    ] * 2
    assert rows[ids[2]].next_attempt_at == later
    assert rows[ids[3]].last_error == "held too"


def test_a_claim_waits_only_behind_its_own_surveys_older_rows(
    sessions: sessionmaker[Session], vault: PhoneVault, any_db_url: str
) -> None:
    with transaction(any_db_url) as session:
        agency = make_agency(session)
        one = scheduled_survey(session, vault, phone="84912000011", case_id="W-1", agency=agency).id
        two = scheduled_survey(session, vault, phone="84912000012", case_id="W-2", agency=agency).id
    retry_at = NOW + timedelta(minutes=1)
    with sessions() as session, session.begin():
        older = outbox.NewMessage(
            dedupe_key="w:older",
            channel=Channel.SMS,
            recipient_enc="x",
            text="t",
            survey_id=one,
            not_before=retry_at,
        )
        outbox.add_messages(session, [older])
        newer = [
            outbox.NewMessage(
                dedupe_key=f"w:{survey}",
                channel=Channel.SMS,
                recipient_enc="x",
                text="t",
                survey_id=survey,
                not_before=NOW,
            )
            for survey in (one, two)
        ]
        waiting_id, free_id = outbox.add_messages(session, newer)
    with sessions() as session, session.begin():
        claims = outbox.claim_due(session, NOW, 10)
        assert sorted(c.id for c in claims) == sorted([waiting_id, free_id])
        assert outbox.waiting_behind(session, claims, NOW) == {waiting_id: retry_at}


def _event(runtime: Runtime, phone: str, text: str) -> int:
    payload = json.dumps({"id": f"mo-{phone}-{text}", "from": phone, "text": text})
    with runtime.sessions() as session, session.begin():
        return store_event(
            session,
            provider="kannel",
            kind="mo",
            provider_id=f"mo-{phone}-{text}",
            payload_enc=runtime.vault.encrypt(payload),
            sender_hash=runtime.vault.lookup_hash(phone),
        ).event_id


@pytest.fixture
def refused_comment(db_url: str) -> Iterator[None]:
    """The database itself refuses one comment (a trigger): a failure that shows only when the
    batch's rows are written, not while its events are applied."""
    require_or_skip(db_url.startswith("postgresql"), "the refusing trigger is PostgreSQL's")
    sessions = session_factory(db_url)
    with sessions() as session, session.begin():
        session.execute(
            text(
                "CREATE FUNCTION refuse_comment() RETURNS trigger AS $$ BEGIN "
                "IF NEW.text = 'poison comment' THEN RAISE EXCEPTION 'refused by the test trigger'; END IF; "
                "RETURN NEW; END $$ LANGUAGE plpgsql"
            )
        )
        session.execute(
            text(
                "CREATE TRIGGER refuse_comment BEFORE INSERT ON comments "
                "FOR EACH ROW EXECUTE FUNCTION refuse_comment()"
            )
        )
    yield
    with sessions() as session, session.begin():
        session.execute(text("DROP TRIGGER refuse_comment ON comments"))
        session.execute(text("DROP FUNCTION refuse_comment()"))


def test_a_write_the_database_refuses_fails_its_event_alone(
    refused_comment: None, db_url: str, settings: Settings, redis: Redis, vault: PhoneVault
) -> None:
    runtime = Runtime.build(settings.model_copy(update={"SIPAS_MAX_EVENT_ATTEMPTS": 2}))
    phones = ["84912000021", "84912000022", "84912000023"]
    with transaction(db_url) as session:
        agency = make_agency(session)
        surveys = [
            scheduled_survey(session, vault, phone=phone, case_id=f"P-{n}", agency=agency).id
            for n, phone in enumerate(phones)
        ]
    with transaction(db_url) as session:
        for survey_id in surveys:
            start_survey(session, settings, survey_id, NOW)
    first = _event(runtime, phones[0], "5")
    poison = _event(runtime, phones[1], "poison comment")
    behind = _event(runtime, phones[1], "4")  # the same citizen's next reply waits for it
    last = _event(runtime, phones[2], "4")

    counts = drain(runtime, budget=60)
    assert (counts["processed"], counts["failed"], counts["dead"]) == (2, 2, 0)
    with runtime.sessions() as session:
        events = {e.id: e for e in session.scalars(select(InboundEvent))}
        answers = set(session.execute(select(Answer.survey_id, Answer.value)).all())
    assert events[first].processed_at is not None
    assert events[last].processed_at is not None
    assert (events[poison].processed_at, events[poison].attempts) == (None, 1)
    assert "refused by the test trigger" in (events[poison].last_error or "")
    assert "poison comment" not in (events[poison].last_error or "")  # no parameters kept
    assert (events[behind].processed_at, events[behind].attempts) == (None, 0)
    assert answers == {(surveys[0], 5), (surveys[2], 4)}

    drain(runtime, budget=60)  # second attempt: set aside, and the citizen's next reply goes on
    with runtime.sessions() as session:
        events = {e.id: e for e in session.scalars(select(InboundEvent))}
        answers = set(session.execute(select(Answer.survey_id, Answer.value)).all())
        comments = session.scalars(select(Comment.text)).all()
        replies = session.scalars(
            select(OutboundMessage.dedupe_key).where(OutboundMessage.survey_id == surveys[1])
        )
        replied = sorted(key for key in replies if ":in:" in key)
    assert events[poison].dead_at is not None
    assert events[poison].attempts == 2
    assert events[behind].processed_at is not None
    assert answers == {(surveys[0], 5), (surveys[1], 4), (surveys[2], 4)}
    assert "poison comment" not in comments
    assert replied == [f"survey:{surveys[1]}:in:{behind}:0"]
