"""PostgreSQL unreachable for 30 s in the middle of conversations (issue 10 "Faults"): web,
worker and cron reach the database through a TCP proxy the test cuts (every connection reset,
new ones refused) and restores; the machine's PostgreSQL itself is never touched (others use it).

While the database is away the webhooks answer 503 and never 200 (nothing could be stored, and a
200 would make Kannel forget the reply), as does intake. The citizens' phones retry as Kannel
does. Afterwards: every reply stored once and applied once, in order, every survey complete,
every message at the phone exactly once.

SIPAS_FAULTS_OUTAGE_CITIZENS (default 20) sets the number of citizens; SIPAS_FAULTS_OUTAGE (30)
the seconds without a database.
"""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from storage.models import Answer, InboundEvent, OutboundMessage, OutboxStatus, Survey, SurveyStatus
from tests.e2e.conftest import Service
from tests.faults.helpers import closed_case, count
from tests.support.processes import wait_until
from tests.support.services import require_or_skip
from tests.support.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.kannel, pytest.mark.slow]

CITIZENS = int(os.environ.get("SIPAS_FAULTS_OUTAGE_CITIZENS", "20"))
OUTAGE = float(os.environ.get("SIPAS_FAULTS_OUTAGE", "30"))


@pytest.fixture
def pg_proxy(db_url: str) -> Iterator[TcpProxy]:
    url = make_url(db_url)
    require_or_skip(url.get_backend_name() == "postgresql", "the database outage needs PostgreSQL")
    with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        yield proxy


@pytest.fixture
def service_env(db_url: str, pg_proxy: TcpProxy) -> dict[str, str]:
    through_proxy = make_url(db_url).set(host="127.0.0.1", port=pg_proxy.port)
    return {
        "DATABASE_URL": through_proxy.render_as_string(hide_password=False),
        "SIPAS_FREQUENCY_CAP_DAYS": "0",
        "LOG_LEVEL": "WARNING",
    }


def _case(n: int, phone: str) -> dict[str, object]:
    return closed_case(f"OUTAGE-{n:04d}", phone=phone)


def test_database_unreachable_for_30_seconds(
    service: Service, sessions: sessionmaker[Session], pg_proxy: TcpProxy
) -> None:
    phones = [f"+8491400{n:04d}" for n in range(CITIZENS)]
    assert service.post_cases({"cases": [_case(n, p) for n, p in enumerate(phones)]}).status_code == 202
    sent = select(func.count()).where(OutboundMessage.status.in_([OutboxStatus.SENT, OutboxStatus.DELIVERED]))
    wait_until(lambda: count(sessions, sent) >= 2 * CITIZENS, timeout=120, what="openings")

    token = service.env["KANNEL_MO_TOKEN"]
    cut = threading.Event()
    window: dict[str, float] = {}
    # (started, ended, status) of every webhook call
    calls: list[tuple[float, float, int]] = []
    lock = threading.Lock()

    def deliver(client: httpx.Client, phone: str, text: str) -> None:
        """One MO as Kannel delivers it: the same id again and again until a 2xx."""
        params = {"token": token, "from": phone.lstrip("+"), "to": "8040", "text": text,
                  "id": uuid.uuid4().hex, "ts": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")}  # fmt: skip
        deadline = time.monotonic() + OUTAGE + 120
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                status = client.get(f"{service.base_url}/webhooks/sms/kannel", params=params).status_code
            except httpx.HTTPError:
                status = 0
            with lock:
                calls.append((started, time.monotonic(), status))
            if 200 <= status < 300:
                return
            time.sleep(1)
        raise AssertionError(f"an MO of {phone} was never accepted")

    def citizen(index: int) -> None:
        with httpx.Client(timeout=30) as client:
            for step, text in enumerate(("5", "4", "3")):
                if step == 1:
                    cut.wait(OUTAGE + 60)  # the second reply is sent while the database is away
                    time.sleep((index % 10) * OUTAGE / 20)
                deliver(client, phones[index], text)
                time.sleep(0.5)

    with ThreadPoolExecutor(min(CITIZENS, 32)) as pool:
        futures = [pool.submit(citizen, n) for n in range(CITIZENS)]
        answered = select(func.count()).select_from(Answer)
        wait_until(lambda: count(sessions, answered) >= CITIZENS // 2, timeout=120, what="first replies")
        pg_proxy.cut()
        window["cut"] = time.monotonic()
        cut.set()
        time.sleep(2)
        intake = service.post_cases({"cases": [_case(9999, "+84914009999")]})
        time.sleep(max(0.0, OUTAGE - (time.monotonic() - window["cut"])))
        window["restored"] = time.monotonic()
        pg_proxy.restore()
        for future in futures:
            future.result()
    assert intake.status_code == 503, intake.text  # intake could not store: retry later
    assert service.post_cases({"cases": [_case(9999, "+84914009999")]}).status_code == 202

    during = [
        status for start, end, status in calls if start > window["cut"] + 0.5 and end < window["restored"]
    ]
    assert during, "no webhook call fell inside the outage"
    assert set(during) == {503}, Counter(during)  # never 200 while nothing could be stored
    assert {status for _s, _e, status in calls} <= {200, 503}
    statuses = Counter(status for _s, _e, status in calls)
    print(
        f"outage {OUTAGE:.0f} s, {CITIZENS} citizens: webhook answers {dict(statuses)}, {len(during)} inside"
    )

    wait_until(lambda: count(sessions, answered) == 3 * CITIZENS, timeout=OUTAGE + 180, what="every reply")
    pending = select(func.count()).where(
        OutboundMessage.status.in_([OutboxStatus.QUEUED, OutboxStatus.SENDING])
    )
    wait_until(lambda: count(sessions, pending) == 0, timeout=120, what="the outbox to drain")
    # A send whose answer the outage swallowed is unknown: settled by Kannel's report, else resent.
    resolved = service.sipas("outbox", "resolve", "--resend", "--unreported-for", "10")
    print(f"unknown sends resent by the operator: {resolved.strip()}")
    wait_until(lambda: count(sessions, pending) == 0, timeout=120, what="the resent messages")
    with sessions() as session:
        events = session.scalars(select(InboundEvent).where(InboundEvent.kind == "mo")).all()
        assert len(events) == 3 * CITIZENS  # each MO stored once, however often it was retried
        assert all(e.processed_at is not None and e.dead_at is None for e in events)
        surveys = session.scalars(select(Survey)).all()
        rows = session.execute(
            select(Answer.survey_id, Answer.value).order_by(Answer.survey_id, Answer.inbound_event_id)
        ).all()
    in_order: dict[int, list[int | None]] = {}
    for survey_id, value in rows:
        in_order.setdefault(survey_id, []).append(value)
    assert set(map(tuple, in_order.values())) == {(5, 4, 3)}
    assert Counter(s.status for s in surveys if s.id in in_order) == Counter(
        {SurveyStatus.COMPLETED: CITIZENS}
    )

    phone = service.kannel.phone
    wait_until(lambda: len(phone.pending_mt()) >= 5 * CITIZENS, timeout=120, what="every MT at the phone")
    time.sleep(2)  # a doubled MT would arrive now
    per_phone = Counter(re.sub(r"\D", "", m.receiver)[-9:] for m in phone.pending_mt())
    mine = {p[-9:] for p in phones}
    assert {n: c for n, c in per_phone.items() if n in mine} == dict.fromkeys(mine, 5)
