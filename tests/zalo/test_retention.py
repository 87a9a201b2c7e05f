"""Retention removes the Zalo chat a survey was linked to, like the phone (workers.retention)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.channels.zalo.simulator.citizen import bot_update
from bot.channels.zalo.simulator.threaded import ThreadedSimulator
from storage.models import Survey, SurveyStatus
from tests.zalo.world import case, handle, make_agencies, outbox, send, start, store_bot, submit
from workers.retention import PURGED, purge
from workers.runtime import Runtime


def test_purge_forgets_the_linked_chat(zalo_runtime: Runtime, threaded_zalo: ThreadedSimulator) -> None:
    make_agencies(zalo_runtime)
    survey_id = submit(zalo_runtime, case("RET-1", phone="0912345678"))
    send(zalo_runtime, start(zalo_runtime, survey_id))
    with zalo_runtime.sessions() as session:
        code = session.get(Survey, survey_id).start_code  # type: ignore[union-attr]
    assert code is not None
    handle(zalo_runtime, store_bot(zalo_runtime, bot_update("chat-ret", code)))
    with zalo_runtime.sessions() as session, session.begin():
        survey = session.get(Survey, survey_id)
        assert survey is not None
        assert survey.zalo_chat_hash is not None
        survey.status = SurveyStatus.EXPIRED
        purge(session, datetime.now(UTC) + timedelta(days=1))
    with zalo_runtime.sessions() as session:
        survey = session.get(Survey, survey_id)
        assert survey is not None
        assert (survey.zalo_chat_enc, survey.zalo_chat_hash, survey.phone_hash) == (None, None, None)
    assert {row.recipient_enc for row in outbox(zalo_runtime, survey_id)} == {PURGED}
