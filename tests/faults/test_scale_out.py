"""Scale-out under faults (issue 9 items 2 and 5, issue 10 "Faults"): two web, two worker and two
cron processes on one PostgreSQL database (CI's; SQLite elsewhere); 1,000 citizens in
conversation at once, each sending all three replies in a burst, alternating between the two web
processes; one worker is killed with SIGKILL in the middle of its batches and started again,
several times; webhooks are duplicated. Afterwards: every reply stored and applied exactly once
and in the order it was sent, every survey complete, and every message at the phone exactly once
(Kannel's fake SMSC is the phone).

SIPAS_FAULTS_CONVERSATIONS (default 1000) sets the number of citizens. Marked `slow` (it starts
processes) with its own timeout: a few minutes on CI's machine. The worker is killed up to three
times in the middle of a batch (up to 20 kills in all, since a kill between batches cuts nothing).
"""

from __future__ import annotations

import os
import re
import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from storage.models import Answer, InboundEvent, OutboundMessage, OutboxStatus, Survey, SurveyStatus
from tests.e2e.conftest import Service
from tests.faults.helpers import closed_case, count
from tests.support.processes import ServiceProcess, wait_ready, wait_until
from tests.support.services import free_port

CONVERSATIONS = int(os.environ.get("SIPAS_FAULTS_CONVERSATIONS", "1000"))

pytestmark = [pytest.mark.kannel, pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture
def service_env() -> dict[str, str]:
    return {"SIPAS_FREQUENCY_CAP_DAYS": "0", "SIPAS_BATCH_SIZE": "50", "LOG_LEVEL": "WARNING"}


def _case(n: int, phone: str) -> dict[str, object]:
    return closed_case(f"SCALE-{n:05d}", phone=phone)


def _soon(predicate: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


# A worker frozen inside its batch: its transaction stays open with no statement running.
FROZEN_IN_A_TRANSACTION = text(
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
    " AND state = 'idle in transaction' AND state_change < now() - interval '0.8 seconds'"
)


def _freeze_in_a_batch(worker: ServiceProcess, sessions: sessionmaker[Session], in_flight: object) -> None:
    """SIGSTOP the worker, and keep it frozen if it stopped inside a batch: its transaction
    stays open and idle while events are attempted but unapplied, so the kill that follows cuts
    that batch off. Otherwise (it was between batches) let it run a moment and try again, a few
    times. On a quiet machine a batch of 50 takes milliseconds, so a bare kill on seeing a batch
    in flight mostly lands after its commit."""
    assert worker.proc is not None
    postgres = sessions.kw["bind"].dialect.name == "postgresql"  # SQLite has one writer anyway
    for _try in range(40):
        os.killpg(worker.proc.pid, signal.SIGSTOP)
        time.sleep(1.0)
        frozen_inside = not postgres or count(sessions, FROZEN_IN_A_TRANSACTION) > 0
        if frozen_inside and count(sessions, in_flight) > 0:
            return
        os.killpg(worker.proc.pid, signal.SIGCONT)
        time.sleep(0.01)


# The second worker's connections carry this name (libpq's PGAPPNAME), so that a backend waiting
# on the answers table held below can be told to be the one worker or the other.
WORKER2_APP = "sipas-scale-out-worker2"
# Backends waiting on a lock: on the answers table held below, only workers inside a batch.
WAITING_ON_A_LOCK = text(
    "SELECT application_name FROM pg_stat_activity"
    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
)


def _kill_inside_a_batch(
    workers: tuple[ServiceProcess, ServiceProcess], sessions: sessionmaker[Session], in_flight: object
) -> ServiceProcess | None:
    """SIGKILL a worker inside an inbound batch; returns it (None: no worker entered a batch in
    time, nothing killed). On PostgreSQL the test holds the answers table (EXCLUSIVE: reads go on,
    inserts wait), so a worker in a batch stops at its batch's write with the attempts counted,
    and the worker seen waiting is the one killed: a kill of a worker between batches (the
    inbound drain is one coalesced job, so one worker may be idle) would cut nothing. Elsewhere
    the first worker is frozen until it is seen in a batch."""
    if sessions.kw["bind"].dialect.name != "postgresql":
        _freeze_in_a_batch(workers[0], sessions, in_flight)
        workers[0].kill()
        return workers[0]
    with sessions() as holder, holder.begin():
        holder.execute(text(f"LOCK TABLE {Answer.__tablename__} IN EXCLUSIVE MODE"))
        waiting: list[str] = []

        def someone_waits() -> bool:
            with sessions() as session:
                waiting[:] = list(session.scalars(WAITING_ON_A_LOCK))
            return bool(waiting)

        if not _soon(someone_waits, 20):
            return None
        victim = workers[1] if WORKER2_APP in waiting else workers[0]
        victim.kill()  # SIGKILL: no cleanup at all
        return victim


def test_two_webs_two_workers_two_crons_kill_and_duplicates(
    service: Service, sessions: sessionmaker[Session]
) -> None:
    env = service.env
    port2 = free_port()
    web2 = ServiceProcess("web2", ["web", "--port", str(port2)], env, service.web.log_path.parent).start()
    worker2 = ServiceProcess(
        "worker2", ["worker"], {**env, "PGAPPNAME": WORKER2_APP}, service.web.log_path.parent
    ).start()
    cron2 = ServiceProcess("cron2", ["cron"], env, service.web.log_path.parent).start()
    service.extra += [web2, worker2, cron2]
    wait_ready(f"http://127.0.0.1:{port2}", port2)
    webs = [service.base_url, f"http://127.0.0.1:{port2}"]
    phones = [f"+8491{n:07d}" for n in range(CONVERSATIONS)]
    for first in range(0, len(phones), 500):
        body = {"cases": [_case(n, phones[n]) for n in range(first, min(first + 500, len(phones)))]}
        assert service.post_cases(body).status_code == 202

    sent_or_delivered = select(func.count()).where(
        OutboundMessage.status.in_([OutboxStatus.SENT, OutboxStatus.DELIVERED])
    )
    wait_until(lambda: count(sessions, sent_or_delivered) >= 2 * CONVERSATIONS, timeout=300, what="openings")

    token = env["KANNEL_MO_TOKEN"]

    def answer(index: int) -> list[int]:
        """One citizen's three replies, one after the other, alternating web processes; the
        second one is delivered twice, as Kannel does when our answer is lost."""
        statuses = []
        with httpx.Client(timeout=30) as client:
            for step, text in enumerate(("5", "4", "3")):
                mo_id = uuid.uuid4().hex
                params = {"token": token, "from": phones[index].lstrip("+"), "to": "8040", "text": text,
                          "id": mo_id, "ts": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")}  # fmt: skip
                for _copy in range(2 if step == 1 else 1):
                    statuses.append(
                        client.get(
                            f"{webs[(index + step) % 2]}/webhooks/sms/kannel", params=params
                        ).status_code
                    )
        return statuses

    with ThreadPoolExecutor(16) as pool:
        replies = pool.map(answer, range(CONVERSATIONS))
        answered = select(func.count()).select_from(Answer)
        # A batch is in flight: its events' attempts are counted (committed) before they apply.
        in_flight = select(func.count()).where(
            InboundEvent.attempts > 0, InboundEvent.processed_at.is_(None), InboundEvent.dead_at.is_(None)
        )
        # Events attempted twice: a batch was cut off by the kill (nothing else fails here).
        interrupted = select(func.count()).where(InboundEvent.attempts > 1)
        # Kill a worker again and again while replies flow, until three kills have cut a batch
        # off (a kill that falls between two batches cuts nothing) or every reply is applied.
        kills = cuts = 0
        deadline = time.monotonic() + 240
        while cuts < 3 and kills < 20 and time.monotonic() < deadline:
            if count(sessions, answered) >= 3 * CONVERSATIONS:
                break
            if count(sessions, answered) >= CONVERSATIONS and count(sessions, in_flight) > 0:
                cut_before = count(sessions, interrupted)
                victim = _kill_inside_a_batch((service.worker, worker2), sessions, in_flight)
                if victim is not None:
                    kills += 1
                    # The other worker takes the dead batch's events over once PostgreSQL has
                    # seen the connection go.
                    if _soon(lambda n=cut_before: count(sessions, interrupted) > n, 30):
                        cuts += 1
                    victim.start()
            time.sleep(0.05)
        statuses = [status for batch in replies for status in batch]
    assert Counter(statuses) == Counter({200: 4 * CONVERSATIONS})
    time.sleep(2)
    for worker in (service.worker, worker2):
        if worker.proc is None:  # killed last: started again now
            worker.start()

    wait_until(
        lambda: count(sessions, answered) == 3 * CONVERSATIONS, timeout=300, what="every reply applied"
    )
    # A batch the kill cut off is applied by another worker in its next drain, which may come
    # after the burst: counted once every reply is applied.
    assert count(sessions, interrupted) > 0, f"none of {kills} kills cut an inbound batch off"
    pending = select(func.count()).where(
        OutboundMessage.status.in_([OutboxStatus.QUEUED, OutboxStatus.SENDING])
    )
    wait_until(lambda: count(sessions, pending) == 0, timeout=120, what="the outbox to drain")
    # Sends the kill interrupted are `unknown`: reported ones were settled by Kannel's delivery
    # reports, the operator resends the rest (docs/reliability.md).
    service.sipas("outbox", "resolve", "--resend", "--unreported-for", "10")
    wait_until(lambda: count(sessions, pending) == 0, timeout=120, what="the resent messages")

    with sessions() as session:
        events = session.scalars(select(InboundEvent).where(InboundEvent.kind == "mo")).all()
        assert len(events) == 3 * CONVERSATIONS  # the duplicated webhook stored once
        assert all(e.processed_at is not None and e.dead_at is None for e in events)
        assert session.scalar(select(func.count()).where(Survey.status != SurveyStatus.COMPLETED)) == 0
        rows = session.execute(
            select(Answer.survey_id, Answer.value).order_by(Answer.survey_id, Answer.inbound_event_id)
        ).all()
        messages = session.execute(select(OutboundMessage.survey_id, OutboundMessage.status)).all()
        strays = session.scalars(
            select(OutboundMessage.dedupe_key).where(OutboundMessage.survey_id.is_(None))
        ).all()
    in_order: dict[int, list[int | None]] = {}
    for survey_id, value in rows:
        in_order.setdefault(survey_id, []).append(value)
    assert set(map(tuple, in_order.values())) == {(5, 4, 3)}  # each citizen's replies in order
    assert strays == []  # nothing sent outside the surveys (an inbox auto-reply would show here)
    assert Counter(survey for survey, _status in messages) == Counter(
        {survey: 5 for survey in in_order}
    )  # opening, three questions, thanks: stored once each
    assert {status for _survey, status in messages} <= {OutboxStatus.SENT, OutboxStatus.DELIVERED}

    phone = service.kannel.phone

    def all_at_phone() -> bool:
        return len(phone.pending_mt()) >= 5 * CONVERSATIONS

    wait_until(all_at_phone, timeout=120, what="every MT at the phone")
    time.sleep(2)  # a doubled MT would arrive now
    per_phone = Counter(re.sub(r"\D", "", m.receiver)[-9:] for m in phone.pending_mt())
    assert set(per_phone.values()) == {5}, per_phone.most_common(3)
    assert len(per_phone) == CONVERSATIONS
