"""No Zalo message twice (issue 10 item 2 on Zalo): a send whose answer is lost after the request
reached Zalo (read timeout) is kept `unknown`, never resent by itself, whatever runs again; a
later `user_received_message` settles it where one comes (OA, ZNS), the operator otherwise
(Bot Platform). A send that never left (connection refused) is retried. Real database and Redis,
the simulated Zalo over HTTP, stalling its answers past SIPAS_SEND_TIMEOUT."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from bot.channels.zalo.simulator.citizen import bot_update
from bot.channels.zalo.simulator.threaded import ThreadedSimulator
from storage import outbox as outbox_rows
from storage.crypto import PhoneVault
from storage.models import Channel, OutboundMessage, OutboxStatus, Route
from tests.support.services import free_port
from tests.zalo.world import case, handle, make_agencies, outbox, send, start, store_bot, store_oa, submit
from workers.runtime import Runtime
from workers.sending import send_batch
from workers.timers import sweep_once

PHONE = "0912345678"
STALL = 3.0  # seconds the simulator waits before answering a send; the client gives up after 1


@pytest.fixture
def runtime(zalo_runtime: Runtime) -> Runtime:
    settings = zalo_runtime.settings.model_copy(update={"SIPAS_SEND_TIMEOUT": 1})
    return Runtime(settings=settings, sessions=zalo_runtime.sessions, vault=zalo_runtime.vault,
                   redis=zalo_runtime.redis)  # fmt: skip


def _row(runtime: Runtime, message_id: int) -> OutboundMessage:
    with runtime.sessions() as session:
        row = session.get(OutboundMessage, message_id)
        assert row is not None
        return row


def _receipt(zalo: ThreadedSimulator, user_id: str, msg_id: str, tracking_id: str = "") -> dict[str, Any]:
    """Zalo's `user_received_message` for a message of ours (the OA is the sender)."""
    config = zalo.sim.config
    return {
        "app_id": config.app_id,
        "event_name": "user_received_message",
        "timestamp": str(int(datetime.now(UTC).timestamp() * 1000)),
        "sender": {"id": config.oa_id},
        "recipient": {"id": user_id},
        "message": {"msg_id": msg_id, "tracking_id": tracking_id},
    }


def _nothing_resent(runtime: Runtime, message_id: int) -> None:
    """The send job, the sweep after the lease and the send job again: the row stays unknown."""
    after_lease = datetime.now(UTC) + timedelta(seconds=runtime.settings.SIPAS_SEND_LEASE + 1)
    assert send(runtime, [message_id]) == ["skipped"]
    sweep_once(runtime, after_lease)
    assert send(runtime, [message_id]) == ["skipped"]
    row = _row(runtime, message_id)
    assert (row.status, row.attempts) == (OutboxStatus.UNKNOWN, 1)
    assert "answer was lost" in (row.last_error or "")


def test_oa_send_whose_answer_is_lost_is_not_resent_and_the_receipt_settles_it(
    runtime: Runtime, threaded_zalo: ThreadedSimulator
) -> None:
    make_agencies(runtime)
    survey_id = submit(runtime, case("OA-LOST", zalo_user_id="oa-user-lost", channel="zalo"))
    opening, question = start(runtime, survey_id)
    threaded_zalo.sim.config.send_stall = STALL

    assert send(runtime, [opening]) == ["unknown"]
    [taken] = threaded_zalo.sim.oa_sent  # Zalo did take it
    _nothing_resent(runtime, opening)
    assert len(threaded_zalo.sim.oa_sent) == 1

    # Zalo's receipt names a message id we never learnt: the one unknown row to that user is it.
    result, _ = handle(
        runtime, store_oa(runtime, _receipt(threaded_zalo, "oa-user-lost", taken["message_id"]))
    )
    assert result == f"receipt settled unknown message {opening}"
    row = _row(runtime, opening)
    assert (row.status, row.provider_id) == (OutboxStatus.DELIVERED, taken["message_id"])

    # The next message goes out normally once Zalo answers in time again.
    threaded_zalo.sim.config.send_stall = 0
    assert send(runtime, [question]) == ["sent"]
    assert [m["text"] for m in threaded_zalo.sim.oa_sent][1].startswith("Câu 1/")


def test_zns_send_whose_answer_is_lost_is_settled_by_its_tracking_id(
    runtime: Runtime, threaded_zalo: ThreadedSimulator
) -> None:
    make_agencies(runtime)
    survey_id = submit(runtime, case("ZNS-LOST", phone=PHONE))
    [zns] = start(runtime, survey_id)
    threaded_zalo.sim.config.send_stall = STALL

    assert send(runtime, [zns]) == ["unknown"]
    _nothing_resent(runtime, zns)
    [taken] = threaded_zalo.sim.zns_sent
    assert taken["tracking_id"] == str(survey_id)
    event = _receipt(threaded_zalo, "zns-user-1", taken["msg_id"], tracking_id=str(survey_id))
    assert handle(runtime, store_oa(runtime, event))[0] == f"receipt settled unknown message {zns}"
    assert _row(runtime, zns).status is OutboxStatus.DELIVERED
    assert len(threaded_zalo.sim.zns_sent) == 1


def test_bot_send_whose_answer_is_lost_waits_for_the_operator(
    runtime: Runtime, threaded_zalo: ThreadedSimulator
) -> None:
    """The Bot Platform sends no receipts: the operator settles it (`sipas outbox resolve`)."""
    make_agencies(runtime)
    survey_id = submit(runtime, case("BOT-LOST", phone=PHONE))
    threaded_zalo.sim.config.send_stall = 0
    assert send(runtime, start(runtime, survey_id)) == ["sent"]
    code = outbox(runtime, survey_id)[0].payload or {}
    start_code = code["template_data"]["ma_khao_sat"]
    threaded_zalo.sim.config.send_stall = STALL
    result, sent = handle(runtime, store_bot(runtime, bot_update("chat-lost", f"Mã {start_code}")))
    assert result == f"linked survey {survey_id}"
    assert sent == ["unknown", "unknown"]
    bot_rows = [r for r in outbox(runtime, survey_id) if r.route is Route.ZALO_BOT]
    assert len(threaded_zalo.sim.bot_sent) == 2
    for row in bot_rows:
        _nothing_resent(runtime, row.id)
    assert len(threaded_zalo.sim.bot_sent) == 2
    with runtime.sessions() as session, session.begin():
        outbox_rows.resolve(session, bot_rows[0].id, sent=True, now=datetime.now(UTC))
    assert _row(runtime, bot_rows[0].id).status is OutboxStatus.SENT


def test_a_send_that_never_left_is_retried(runtime: Runtime, threaded_zalo: ThreadedSimulator) -> None:
    """Nothing listens where the OA API should be: connection refused, retried, then sent once."""
    make_agencies(runtime)
    survey_id = submit(runtime, case("OA-DOWN", zalo_user_id="oa-user-down", channel="zalo"))
    opening, _question = start(runtime, survey_id)
    down = Runtime(
        settings=runtime.settings.model_copy(update={"ZALO_OA_API_BASE": f"http://127.0.0.1:{free_port()}"}),
        sessions=runtime.sessions, vault=runtime.vault, redis=runtime.redis,
    )  # fmt: skip
    assert send(down, [opening]) == ["retry"]
    row = _row(runtime, opening)
    assert (row.status, row.attempts) == (OutboxStatus.QUEUED, 1)
    assert "unreachable: ConnectError" in (row.last_error or "")
    with runtime.sessions() as session, session.begin():
        queued = session.get(OutboundMessage, opening)
        assert queued is not None
        queued.next_attempt_at = datetime.now(UTC)
    assert send(runtime, [opening]) == ["sent"]
    assert [m["user_id"] for m in threaded_zalo.sim.oa_sent] == ["oa-user-down"]


def test_a_receipt_that_fits_two_unknown_rows_settles_neither(
    sessions: sessionmaker[Session], vault: PhoneVault
) -> None:
    with sessions() as session, session.begin():
        ids = []
        for n in range(2):
            row = outbox_rows.add_message(
                session, dedupe_key=f"oa:{n}", channel=Channel.ZALO, route=Route.ZALO_OA,
                recipient_enc=vault.encrypt("oa-user-twice"), text=f"message {n}",
            )  # fmt: skip
            row.status = OutboxStatus.UNKNOWN
            session.flush()
            ids.append(row.id)
    with sessions() as session, session.begin():
        settled = outbox_rows.settle_zalo_receipt(
            session, vault, msg_id="m-1", user_id="oa-user-twice", tracking_id=None, now=datetime.now(UTC)
        )
    assert settled is None
    with sessions() as session:
        assert {session.get(OutboundMessage, i).status for i in ids} == {OutboxStatus.UNKNOWN}  # type: ignore[union-attr]


def test_a_message_behind_a_refused_one_is_held_not_sent_first(
    runtime: Runtime, threaded_zalo: ThreadedSimulator
) -> None:
    """One batch holds the opening and question 1 for a user; Zalo refuses the opening (500):
    question 1 is not sent before it, goes back to the queue without using an attempt, due with
    the opening's retry, and the next batch sends both in order."""
    make_agencies(runtime)
    survey_id = submit(runtime, case("OA-HELD", zalo_user_id="oa-user-held", channel="zalo"))
    opening, question = start(runtime, survey_id)
    threaded_zalo.sim.config.send_failures.append(500)
    assert sorted(send_batch(runtime, 10, ids=[opening, question])) == ["held", "retry"]
    assert threaded_zalo.sim.oa_sent == []
    first, held = _row(runtime, opening), _row(runtime, question)
    assert (first.status, first.attempts) == (OutboxStatus.QUEUED, 1)
    assert (held.status, held.attempts, held.requested_at) == (OutboxStatus.QUEUED, 0, None)
    assert held.next_attempt_at == first.next_attempt_at
    assert f"held behind message {opening}" in (held.last_error or "")
    assert send_batch(runtime, 10, now=first.next_attempt_at, ids=[opening, question]) == ["sent", "sent"]
    texts = [m["text"] for m in threaded_zalo.sim.oa_sent]
    assert "OA-HELD" in texts[0]
    assert texts[1].startswith("Câu 1/")


def test_a_message_never_overtakes_an_older_one_of_its_survey_waiting_for_a_retry(
    runtime: Runtime, threaded_zalo: ThreadedSimulator
) -> None:
    """The opening was refused in an earlier batch and waits for its retry: question 1, due now,
    is not sent before it, but released to the opening's retry time without using an attempt."""
    make_agencies(runtime)
    survey_id = submit(runtime, case("OA-WAIT", zalo_user_id="oa-user-wait", channel="zalo"))
    opening, question = start(runtime, survey_id)
    threaded_zalo.sim.config.send_failures.append(429)
    assert send(runtime, [opening]) == ["retry"]
    assert send(runtime, [question]) == ["skipped"]
    assert threaded_zalo.sim.oa_sent == []
    first, waiting = _row(runtime, opening), _row(runtime, question)
    assert (waiting.status, waiting.attempts, waiting.next_attempt_at) == (
        OutboxStatus.QUEUED,
        0,
        first.next_attempt_at,
    )
    assert send_batch(runtime, 10, now=first.next_attempt_at, ids=[opening, question]) == ["sent", "sent"]
    texts = [m["text"] for m in threaded_zalo.sim.oa_sent]
    assert "OA-WAIT" in texts[0]
    assert texts[1].startswith("Câu 1/")
