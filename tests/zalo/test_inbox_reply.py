"""A Zalo user who writes to the Official Account outside any survey, end to end over HTTP: the
simulated Zalo posts the signed webhook to the real app, the inbound job keeps the message in the
unit's inbox and queues the automatic reply, the send job delivers it to the simulated OA. Exactly
one reply a day per user, in Vietnamese with diacritics, never to a user who refused."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from redis import Redis
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.channels.zalo.simulator.citizen import oa_text_event
from bot.channels.zalo.simulator.threaded import ThreadedSimulator
from flows.rules import change_rule
from storage.agencies import get_by_code
from storage.crypto import PhoneVault
from storage.models import Channel, InboxMessage, OutboundMessage, Route, Survey, SurveyStatus
from tests.support.app import RecordingDispatcher, app_client
from tests.zalo.world import WARD, case, make_agencies, submit
from workers.inbound import process
from workers.runtime import Runtime
from workers.sending import deliver

USER, REFUSER = "4411223344556677", "4411223344550000"


def _finish_surveys(runtime: Runtime) -> None:
    """The users' surveys are over: what they write now belongs to no survey."""
    with runtime.sessions() as session, session.begin():
        for survey in session.scalars(select(Survey)):
            survey.status = SurveyStatus.COMPLETED


async def test_a_zalo_user_outside_any_survey_gets_one_automatic_oa_reply_a_day(
    zalo_runtime: Runtime,
    threaded_zalo: ThreadedSimulator,
    sessions: sessionmaker[Session],
    vault: PhoneVault,
    redis: Redis,
) -> None:
    runtime, sim = zalo_runtime, threaded_zalo.sim
    make_agencies(runtime)
    submit(runtime, case("ZL-INBOX-1", zalo_user_id=USER))
    submit(runtime, case("ZL-INBOX-2", zalo_user_id=REFUSER))
    _finish_surveys(runtime)
    with runtime.sessions() as session, session.begin():
        ward = get_by_code(session, WARD)
        assert ward is not None
        change_rule(session, ward, "inbox_reply_zalo", "Tài khoản chỉ nhận khảo sát. Hỏi hồ sơ: {agency}.",
                    actor="test", now=datetime.now(UTC))  # fmt: skip
    dispatcher = RecordingDispatcher()

    async with app_client(runtime.settings, sessions, vault, redis, dispatcher) as web:
        url = str(web.make_url("/webhooks/zalo/oa"))
        config = sim.config

        async def write(user: str, text: str, at: datetime) -> tuple[str, list[str]]:
            """The user writes on Zalo (webhook over HTTP), then the inbound and send jobs run."""
            event = oa_text_event(config.app_id, config.oa_id, user, text)
            status, answer = await asyncio.to_thread(threaded_zalo.call, sim.deliver_oa_event(url, event))
            assert (status, answer) == (200, {"status": "stored"})
            result, ids = await asyncio.to_thread(process, runtime, dispatcher.inbound[-1], at)
            due = max(at, datetime.now(UTC))  # a queued row is due from when it was stored
            sent = [await asyncio.to_thread(deliver, runtime, message_id, due) for message_id in ids]
            return result, sent

        now = datetime.now(UTC)
        first = await write(USER, "Cho hỏi hồ sơ của tôi đến đâu rồi?", now)
        assert first[0].startswith("inbox ")
        assert first[1] == ["sent"]
        again = await write(USER, "Alo, sao không ai trả lời?", now + timedelta(minutes=5))
        assert again[0].startswith("inbox ")
        assert again[1] == []
        assert [m["user_id"] for m in sim.oa_sent] == [USER]
        assert sim.oa_sent[0]["text"] == "Tài khoản chỉ nhận khảo sát. Hỏi hồ sơ: UBND phường Hạ Đình."

        refused = await write(REFUSER, "TC", now)
        assert refused == ("opt-out without active survey", [])
        assert (await write(REFUSER, "Cho hỏi giờ làm việc?", now))[1] == []  # never written to

        tomorrow = await write(USER, "Hôm nay thì sao?", now + timedelta(days=1))
        assert tomorrow[1] == ["sent"]
        assert [m["user_id"] for m in sim.oa_sent] == [USER, USER]

    with runtime.sessions() as session:
        messages = session.scalars(select(InboxMessage).order_by(InboxMessage.id)).all()
        assert [(m.channel, m.agency_id is not None) for m in messages] == [(Channel.ZALO, True)] * 4
        replies: list[Any] = list(
            session.scalars(select(OutboundMessage).where(OutboundMessage.route == Route.ZALO_OA))
        )
        assert len(replies) == 2
        assert all(vault.decrypt(r.recipient_enc) == USER for r in replies)
        assert [m.auto_reply_id is not None for m in messages] == [True, False, False, True]
