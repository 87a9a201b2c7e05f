"""The SMS gateway refusing with 429 and answering slowly under load, with the batched sender
(issue 10 "Faults"): real processes and Kannel, with a misbehaving HTTP gateway in front of
Kannel's sendsms. At first every second request is refused (429, Retry-After: 1); every answer
comes late, and every 15th comes after the sender's timeout although Kannel took the message.
Afterwards: every reply applied once, every survey complete, every message at the phone exactly
once (refused sends retried, lost answers kept `unknown` and settled by Kannel's delivery report
or resent once by the operator).

SIPAS_FAULTS_GATEWAY_CITIZENS (default 60) sets the number of citizens.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from storage.models import Answer, OutboundMessage, OutboxStatus, Survey, SurveyStatus
from tests.e2e.conftest import Service
from tests.faults.helpers import closed_case, count
from tests.support.http_faults import FaultyGateway
from tests.support.processes import wait_until

pytestmark = [pytest.mark.kannel, pytest.mark.slow]

CITIZENS = int(os.environ.get("SIPAS_FAULTS_GATEWAY_CITIZENS", "60"))


@pytest.fixture
def gateway() -> Iterator[FaultyGateway]:
    with FaultyGateway() as faulty:
        yield faulty


@pytest.fixture
def service_env(gateway: FaultyGateway) -> dict[str, str]:
    return {
        "KANNEL_SENDSMS_URL": gateway.url,
        "SIPAS_FREQUENCY_CAP_DAYS": "0",
        "SIPAS_BATCH_SIZE": "50",
        "LOG_LEVEL": "WARNING",
    }


def _case(n: int, phone: str) -> dict[str, object]:
    return closed_case(f"GW-{n:04d}", phone=phone)


def test_gateway_refusing_and_slow_under_load(
    service: Service, sessions: sessionmaker[Session], gateway: FaultyGateway
) -> None:
    gateway.target = service.kannel.settings_overrides()["KANNEL_SENDSMS_URL"]
    gateway.refuse_first, gateway.refuse_every = 2 * CITIZENS, 2
    # Late answers; every 15th after the sender's timeout (SIPAS_SEND_TIMEOUT=5 in the service).
    gateway.delay, gateway.stall_every, gateway.stall = 1.0, 15, 7.0
    phones = [f"+8491500{n:04d}" for n in range(CITIZENS)]
    assert service.post_cases({"cases": [_case(n, p) for n, p in enumerate(phones)]}).status_code == 202
    answered = select(func.count()).select_from(Answer)
    done = select(func.count()).where(OutboundMessage.status.in_([OutboxStatus.SENT, OutboxStatus.DELIVERED]))
    wait_until(lambda: count(sessions, done) >= 2 * CITIZENS, timeout=300, what="openings")

    token = service.env["KANNEL_MO_TOKEN"]

    def answer(index: int) -> list[int]:
        statuses = []
        with httpx.Client(timeout=30) as client:
            for text in ("5", "4", "3"):
                stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
                params = {"token": token, "from": phones[index].lstrip("+"), "to": "8040", "text": text,
                          "id": uuid.uuid4().hex, "ts": stamp}  # fmt: skip
                statuses.append(
                    client.get(f"{service.base_url}/webhooks/sms/kannel", params=params).status_code
                )
        return statuses

    with ThreadPoolExecutor(16) as pool:
        statuses = [status for batch in pool.map(answer, range(CITIZENS)) for status in batch]
    assert Counter(statuses) == Counter({200: 3 * CITIZENS})
    wait_until(lambda: count(sessions, answered) == 3 * CITIZENS, timeout=300, what="every reply applied")
    pending = select(func.count()).where(
        OutboundMessage.status.in_([OutboxStatus.QUEUED, OutboxStatus.SENDING])
    )
    wait_until(lambda: count(sessions, pending) == 0, timeout=300, what="the outbox to drain")
    unknown = select(func.count()).where(OutboundMessage.status == OutboxStatus.UNKNOWN)
    # Kannel took every stalled one: its delivery reports settle them.
    wait_until(lambda: count(sessions, unknown) == 0, timeout=60, what="unknown sends settled by reports")
    resolved = service.sipas("outbox", "resolve", "--resend", "--unreported-for", "10")

    with sessions() as session:
        assert session.scalar(select(func.count()).where(Survey.status != SurveyStatus.COMPLETED)) == 0
        retried = session.scalar(select(func.count()).where(OutboundMessage.attempts > 1))
        statuses_left = set(session.scalars(select(OutboundMessage.status)))
    assert statuses_left <= {OutboxStatus.SENT, OutboxStatus.DELIVERED}
    phone = service.kannel.phone
    wait_until(lambda: len(phone.pending_mt()) >= 5 * CITIZENS, timeout=120, what="every MT at the phone")
    time.sleep(2)  # a doubled MT would arrive now
    per_phone = Counter(re.sub(r"\D", "", m.receiver)[-9:] for m in phone.pending_mt())
    assert per_phone == Counter({p[-9:]: 5 for p in phones})
    assert gateway.refused > 0
    assert gateway.stalled > 0
    print(
        f"gateway: {gateway.requests} requests, {gateway.refused} refused 429, {gateway.stalled} answered "
        f"after the timeout; {retried} messages sent on a later attempt; operator: {resolved.strip()}"
    )
