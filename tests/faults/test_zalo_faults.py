"""The Zalo API failing under the batched sender (issue 10 "Faults"): citizens on the agency's
Official Account while the simulated Zalo answers 5xx and 429 (OA -32 with Retry-After) to a share
of the sends, at the start and again in the middle of the conversations; real processes, the
simulator over HTTP as both Zalo and the citizens. Afterwards: every reply stored and applied
once, and every message in each citizen's Zalo exactly once.

SIPAS_FAULTS_ZALO_CITIZENS (default 30) sets the number of citizens.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.channels.zalo.simulator import SimConfig
from bot.channels.zalo.simulator.citizen import oa_text_event
from bot.channels.zalo.simulator.threaded import ThreadedSimulator
from storage.models import Answer, InboundEvent, OutboundMessage, OutboxStatus
from tests.e2e.conftest import Service
from tests.faults.helpers import closed_case, count
from tests.support.processes import wait_until

pytestmark = [pytest.mark.kannel, pytest.mark.slow]

CITIZENS = int(os.environ.get("SIPAS_FAULTS_ZALO_CITIZENS", "30"))
REPLIES = ("5", "4", "5")  # overall, cong_chuc, ket_qua: each answer brings the next question


@pytest.fixture
def zalo() -> Iterator[ThreadedSimulator]:
    with ThreadedSimulator(SimConfig()) as simulated:
        yield simulated


@pytest.fixture
def service_env(zalo: ThreadedSimulator, tmp_path: Path) -> dict[str, str]:
    rules = tmp_path / "channels.yaml"
    rules.write_text("agencies:\n  HN-TX:\n    strategy: zalo_first\n", encoding="utf-8")
    config, base = zalo.sim.config, zalo.sim.base_url
    return {
        "ZALO_OA_APP_ID": config.app_id,
        "ZALO_OA_SECRET_KEY": config.oa_secret_key,
        "ZALO_APP_SECRET": config.app_secret,
        "ZALO_OA_API_BASE": base,
        "ZALO_OAUTH_BASE": base,
        "ZNS_API_BASE": base,
        "SIPAS_CHANNELS_FILE": str(rules),
        "SIPAS_FREQUENCY_CAP_DAYS": "0",
        "SIPAS_BATCH_SIZE": "25",
        "LOG_LEVEL": "WARNING",
    }


def _case(n: int) -> dict[str, object]:
    return closed_case(f"ZF-{n:04d}", zalo_user_id=f"oa-fault-{n:04d}", channel="zalo")


def test_zalo_answering_errors_with_the_batched_sender(
    service: Service, zalo: ThreadedSimulator, sessions: sessionmaker[Session]
) -> None:
    sim = zalo.sim
    sim.config.oa_webhook_url = f"{service.base_url}/webhooks/zalo/oa"
    access, refresh = sim.issue_tokens()
    service.sipas("zalo", "store-oa-token", "--refresh-token", refresh, "--access-token", access,
                  "--expires-in", "90000")  # fmt: skip
    # The first sends: one in two refused, alternately 500 and 429.
    sim.config.send_failures.extend([500, 429] * (CITIZENS // 2))
    users = [f"oa-fault-{n:04d}" for n in range(CITIZENS)]
    assert service.post_cases({"cases": [_case(n) for n in range(CITIZENS)]}).status_code == 202

    def received(user: str) -> int:
        return sum(1 for message in list(sim.oa_sent) if message["user_id"] == user)

    def converse(index: int) -> None:
        user = users[index]
        wait_until(lambda: received(user) >= 2, timeout=180, what=f"{user}'s opening and question 1")
        for step, text in enumerate(REPLIES):
            event = oa_text_event(sim.config.app_id, sim.config.oa_id, user, text)
            status, body = zalo.call(sim.deliver_oa_event(None, event))
            assert (status, body) == (200, {"status": "stored"})
            expected = 3 + step
            wait_until(lambda n=expected: received(user) >= n, timeout=180, what=f"{user}'s next message")

    with ThreadPoolExecutor(min(CITIZENS, 16)) as pool:
        conversations = [pool.submit(converse, n) for n in range(CITIZENS)]
        answered = select(func.count()).select_from(Answer)
        wait_until(lambda: count(sessions, answered) >= CITIZENS // 2, timeout=180, what="first replies")
        sim.config.send_failures.extend([429, 500] * (CITIZENS // 4))  # again, mid-conversation
        for conversation in conversations:
            conversation.result()

    wait_until(lambda: count(sessions, answered) == 3 * CITIZENS, timeout=120, what="every reply applied")
    pending = select(func.count()).where(
        OutboundMessage.status.in_([OutboxStatus.QUEUED, OutboxStatus.SENDING])
    )
    wait_until(lambda: count(sessions, pending) == 0, timeout=120, what="the outbox to drain")
    time.sleep(2)  # a doubled message would arrive now
    with sessions() as session:
        events = session.scalar(select(func.count()).where(InboundEvent.kind == "user_send_text"))
        statuses = Counter(session.scalars(select(OutboundMessage.status)))
        retried = session.scalar(select(func.count()).where(OutboundMessage.attempts > 1))
    assert events == 3 * CITIZENS
    assert set(statuses) == {OutboxStatus.SENT}, statuses
    per_user = Counter((m["user_id"], m["text"]) for m in sim.oa_sent)
    assert set(per_user.values()) == {1}  # no message twice
    assert Counter(user for user, _text in per_user) == Counter({user: 5 for user in users})
    # In the order the conversation asks them, whatever was refused and retried in between.
    for n, user in enumerate(users):
        texts = [m["text"] for m in sim.oa_sent if m["user_id"] == user]
        assert f"ZF-{n:04d}" in texts[0], texts
        assert [t.split(":")[0].split("/")[0] for t in texts[1:]] == ["Câu 1", "Câu 2", "Câu 3", "Câu 4"], (
            texts
        )
    assert len(sim.send_refusals) == 2 * (CITIZENS // 2) + 2 * (CITIZENS // 4)
    print(f"zalo: {len(sim.oa_sent)} OA messages, {Counter(sim.send_refusals)} refused, {retried} retried")
