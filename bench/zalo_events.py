"""The inbound job's cost per Zalo event, the Zalo router included.

    python -m bench.zalo_events --database-url postgresql://postgres@127.0.0.1:5432/postgres \
        --redis-url redis://127.0.0.1:6379/11 [--events 5000] [--repeat 3]

Stores N Official Account `follow` events (each from its own user, encrypted, as the webhook
stores them) in a fresh PostgreSQL database made for the run (dropped afterwards), then runs each
through workers.zalo_inbound.process_zalo_event in a transaction of its own, as the inbound job
does. The follow handler writes nothing, so the figure is what every Zalo event pays before its
handler's own work: the decryption, the parse into the typed event and the router. It uses only
what the tree had before the Zalo router became synchronous (issue 9 item 4: no `asyncio.run` per
event), so the same file measures before and after on one machine. Figures are printed, never
asserted; record them with the load average in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from datetime import UTC, datetime

from sqlalchemy import select

from config.logging import configure_logging
from config.settings import Settings
from storage.crypto import PhoneVault
from storage.db import session_factory
from storage.inbound import store_event
from storage.migrate import upgrade
from storage.models import InboundEvent
from storage.redis import redis_for
from tests.support.services import postgres_database
from workers.runtime import Runtime
from workers.zalo_inbound import process_zalo_event

SECRET = "bench-secret-key-0123456789abcdef"


def _store_follows(runtime: Runtime, count: int, round_: int) -> list[int]:
    """`count` follow events as the OA webhook stores them; their ids."""
    ids: list[int] = []
    stamp = str(int(time.time() * 1000))
    with runtime.sessions() as session, session.begin():
        for n in range(count):
            user = f"{round_:02d}{n:017d}"
            body = {"app_id": "3051234567890123456", "event_name": "follow", "timestamp": stamp,
                    "follower": {"id": user}, "oa_id": "4301234567890123456"}  # fmt: skip
            stored = store_event(
                session,
                provider="zalo_oa",
                kind="follow",
                provider_id=f"follow:bench:{round_}:{n}",
                payload_enc=runtime.vault.encrypt(json.dumps(body)),
                sender_hash=runtime.vault.lookup_hash(user),
            )
            ids.append(stored.event_id)
    return ids


def _process(runtime: Runtime, ids: list[int]) -> tuple[float, float]:
    """(wall, this process's CPU) seconds to run every event through the Zalo router, one
    transaction each. The CPU figure leaves out PostgreSQL's work and waiting on a busy machine."""
    start, cpu = time.perf_counter(), time.process_time()
    for event_id in ids:
        with runtime.sessions() as session, session.begin():
            event = session.scalars(select(InboundEvent).where(InboundEvent.id == event_id)).one()
            result, outbox_ids = process_zalo_event(runtime, session, event, datetime.now(UTC))
            if result != "follow noted" or outbox_ids:
                raise RuntimeError(f"the follow handler did not take the event: {result}")
    return time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True, help="PostgreSQL server (a fresh database is made)")
    parser.add_argument("--redis-url", required=True, help="a Redis database the run may use")
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    configure_logging("WARNING")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"# zalo_events {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, load average {load}")
    with postgres_database(args.database_url) as url:
        upgrade(url)
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            DATABASE_URL=url,
            REDIS_URL=args.redis_url,
            SIPAS_SECRET_KEY=SECRET,
        )
        runtime = Runtime(
            settings=settings,
            sessions=session_factory(url),
            vault=PhoneVault.from_settings(settings),
            redis=redis_for(args.redis_url),
        )
        per_event: list[float] = []
        cpu_per_event: list[float] = []
        for round_ in range(args.repeat):
            ids = _store_follows(runtime, args.events, round_)
            took, cpu = _process(runtime, ids)
            per_event.append(took / len(ids) * 1e6)
            cpu_per_event.append(cpu / len(ids) * 1e6)
            print(f"round {round_ + 1}: {len(ids)} events in {took:.2f} s, {len(ids) / took:,.0f} events/s, "
                  f"{per_event[-1]:.0f} µs per event, {cpu_per_event[-1]:.0f} µs CPU")  # fmt: skip
        median, cpu_median = statistics.median(per_event), statistics.median(cpu_per_event)
        now_load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"median {median:.0f} µs per event ({1e6 / median:,.0f} events/s), {cpu_median:.0f} µs CPU "
              f"per event, load average now {now_load}")  # fmt: skip


if __name__ == "__main__":
    main()
