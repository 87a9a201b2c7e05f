"""Poison events (issue 10 item 5): an event whose processing raises has its attempt counted all
the same (in a transaction of its own), is set aside as a dead letter after
SIPAS_MAX_EVENT_ATTEMPTS, never holds back other senders' newer events, and holds back its own
sender's later events only until it is set aside. `sipas dead-letters` lists, retries, drops."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from redis import Redis
from rq import Queue
from sqlalchemy import select

from config.settings import Settings, get_settings
from storage.inbound import store_event
from storage.models import InboundEvent
from tests.conftest import SECRET_KEY
from workers.cli import cli
from workers.inbound import drain
from workers.queues import DEFAULT_QUEUE
from workers.runtime import Runtime, get_runtime


@pytest.fixture
def runtime(settings: Settings, redis: Redis) -> Runtime:
    return Runtime.build(settings.model_copy(update={"SIPAS_MAX_EVENT_ATTEMPTS": 3, "SIPAS_BATCH_SIZE": 10}))


def _store(runtime: Runtime, n: int, sender: str, *, poison: bool) -> int:
    payload = "not json at all" if poison else json.dumps({"id": f"e{n}", "from": sender, "text": "xin chao"})
    with runtime.sessions() as session, session.begin():
        return store_event(
            session,
            provider="kannel",
            kind="mo",
            provider_id=f"e{n}",
            payload_enc=runtime.vault.encrypt(payload),
            sender_hash=runtime.vault.lookup_hash(sender),
        ).event_id


def _events(runtime: Runtime) -> dict[int, InboundEvent]:
    with runtime.sessions() as session:
        return {event.id: event for event in session.scalars(select(InboundEvent))}


def test_poison_events_are_set_aside_and_never_block_newer_ones(runtime: Runtime) -> None:
    poison = [_store(runtime, n, f"+8491200{n:04d}", poison=True) for n in range(20)]
    good = [_store(runtime, 100 + n, f"+8491300{n:04d}", poison=False) for n in range(20)]
    # One sender whose first event is poison and whose second is fine: order holds it back.
    stuck = _store(runtime, 500, "+84914000000", poison=True)
    behind = _store(runtime, 501, "+84914000000", poison=False)

    first = drain(runtime, budget=60)
    events = _events(runtime)
    assert all(events[i].processed_at is not None for i in good)  # newer events went through
    assert all(events[i].attempts == 1 and events[i].processed_at is None for i in [*poison, stuck])
    assert all(events[i].last_error and "JSONDecodeError" in events[i].last_error for i in poison)
    assert events[behind].processed_at is None
    assert events[behind].attempts == 0  # waiting is not an attempt
    assert first["failed"] == 22

    for _ in range(2):
        drain(runtime, budget=60)
    events = _events(runtime)
    assert all(events[i].dead_at is not None and events[i].attempts == 3 for i in [*poison, stuck])
    assert events[behind].processed_at is not None  # its sender's poison event is set aside
    assert drain(runtime, budget=60)["processed"] == 0  # dead letters are not retried by themselves


@pytest.fixture
def cli_env(db_url: str, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)
    for name, value in {
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_url,
        "SIPAS_SECRET_KEY": SECRET_KEY,
        "SIPAS_MAX_EVENT_ATTEMPTS": "1",
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    get_runtime.cache_clear()
    yield
    get_settings.cache_clear()
    get_runtime.cache_clear()


def test_sipas_dead_letters_list_retry_drop(cli_env: None, redis: Redis) -> None:
    runtime = get_runtime()
    ids = [_store(runtime, n, f"+8491500{n:04d}", poison=True) for n in range(3)]
    drain(runtime, budget=60)
    listed = CliRunner().invoke(cli, ["dead-letters", "list"])
    assert listed.exit_code == 0, listed.output
    assert "3 dead letter(s)" in listed.output
    assert "+849150" not in listed.output
    retried = CliRunner().invoke(cli, ["dead-letters", "retry", str(ids[0])])
    assert "1 event(s) queued" in retried.output
    assert Queue(DEFAULT_QUEUE, connection=redis).job_ids == ["drain-inbound-1"]
    dropped = CliRunner().invoke(cli, ["dead-letters", "drop", "--all"])
    assert "2 event(s) dropped" in dropped.output
    events = _events(runtime)
    assert (events[ids[0]].dead_at, events[ids[0]].attempts) == (None, 0)
    assert all(events[i].processed_at is not None for i in ids[1:])
    assert CliRunner().invoke(cli, ["dead-letters", "retry"]).exit_code == 2  # ids or --all
