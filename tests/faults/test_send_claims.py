"""A worker killed between claiming sends and their requests leaving (issue 10 item 2): those
claims are sent again by themselves after the lease; a worker killed once the requests were
marked in flight leaves them `unknown`, never resent by themselves. Real processes, Kannel's
fake SMSC as the phone; the worker reaches Redis through a proxy that freezes it at a known
point of the send batch (the cost-cap counters come before the in-flight mark, the rate limiter
after it), where the test kills it with SIGKILL."""

from __future__ import annotations

import re
import time
from collections import Counter

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from storage.models import OutboundMessage, OutboxStatus
from tests.e2e.conftest import Service
from tests.faults.helpers import closed_case
from tests.support.processes import ServiceProcess, wait_until
from tests.support.tcp_proxy import TcpProxy

CITIZENS = 3


def _case(n: int, phone: str) -> dict[str, object]:
    return closed_case(f"CLAIM-{n:03d}", phone=phone)


def _rows(sessions: sessionmaker[Session]) -> list[OutboundMessage]:
    with sessions() as session:
        return list(session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)))


def _frozen_worker(service: Service, proxy: TcpProxy, marker: bytes, name: str) -> ServiceProcess:
    """A worker whose Redis link freezes at the first command holding `marker`."""
    proxy.trip(marker)
    env = {**service.env, "REDIS_URL": f"redis://127.0.0.1:{proxy.port}/0"}
    worker = ServiceProcess(name, ["worker"], env, service.web.log_path.parent).start()
    service.extra.append(worker)
    return worker


def _mts_per_phone(service: Service) -> Counter[str]:
    return Counter(re.sub(r"\D", "", m.receiver)[-9:] for m in service.kannel.phone.pending_mt())


def test_claims_of_a_worker_killed_before_the_requests_left_are_sent_again(
    service: Service, sessions: sessionmaker[Session]
) -> None:
    service.worker.stop()
    phones = [f"+8491300{n:04d}" for n in range(CITIZENS)]
    with TcpProxy("127.0.0.1", service.redis.port) as proxy:
        # Killed after the claim, at the cost-cap counters: nothing was marked in flight.
        worker = _frozen_worker(service, proxy, b"sipas:cap:to:", "worker-before-request")
        assert service.post_cases({"cases": [_case(n, p) for n, p in enumerate(phones)]}).status_code == 202
        assert proxy.tripped.wait(60), "the worker never reached the send batch"
        claimed = [r for r in _rows(sessions) if r.status is OutboxStatus.SENDING]
        assert claimed, "nothing was claimed"
        assert all(r.requested_at is None for r in claimed)
        worker.kill()
        killed_at = time.monotonic()

        service.worker.start()
        done = {OutboxStatus.SENT, OutboxStatus.DELIVERED}
        wait_until(
            lambda: all(r.status in done for r in _rows(sessions)) and len(_rows(sessions)) == 2 * CITIZENS,
            timeout=120,
            what="the expired claims sent again by themselves",
        )
        # Not before the lease (10 s): the claim could still have been a live worker's.
        assert time.monotonic() - killed_at >= 10
        rows = {r.id: r for r in _rows(sessions)}
        for row in claimed:
            assert rows[row.id].attempts == 2  # the lost claim counts: attempts stay capped
            assert "sent again" in (rows[row.id].last_error or "") or rows[row.id].last_error is None
        wait_until(
            lambda: sum(_mts_per_phone(service).values()) >= 2 * CITIZENS, timeout=60, what="MTs at the phone"
        )
        time.sleep(2)  # a doubled MT would arrive now
        assert set(_mts_per_phone(service).values()) == {2}  # opening and question 1, once each

        # Killed after the in-flight mark, at the rate limiter: the requests may have left.
        service.worker.stop()
        worker = _frozen_worker(service, proxy, b"sipas:rate:", "worker-in-flight")
        late = "+84913009999"
        assert service.post_cases({"cases": [_case(99, late)]}).status_code == 202
        assert proxy.tripped.wait(60), "the worker never reached the rate limiter"
        in_flight = [r for r in _rows(sessions) if r.status is OutboxStatus.SENDING]
        assert in_flight
        assert all(r.requested_at is not None for r in in_flight)
        worker.kill()
        service.worker.start()
        wait_until(
            lambda: all(
                r.status is OutboxStatus.UNKNOWN for r in _rows(sessions) if r.id in {x.id for x in in_flight}
            ),
            timeout=60,
            what="in-flight claims set aside as unknown",
        )
        time.sleep(3)  # sweeps keep running: nothing is resent by itself
        assert all(
            r.status is OutboxStatus.UNKNOWN and r.attempts == 1
            for r in _rows(sessions)
            if r.id in {x.id for x in in_flight}
        )
        assert _mts_per_phone(service)[late[-9:]] == 0
        # No delivery report ever named them: the operator resends them, once.
        service.sipas("outbox", "resolve", "--resend", "--unreported-for", "5")
        wait_until(
            lambda: _mts_per_phone(service)[late[-9:]] == 2,
            timeout=60,
            what="the resent messages at the phone",
        )
        time.sleep(2)
        assert _mts_per_phone(service)[late[-9:]] == 2
