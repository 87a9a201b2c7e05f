"""The OA token pair persisted in the database, refreshed by one process at a time (Redis lock)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from redis import Redis
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.channels.zalo import OATokens, ZaloOAClient
from bot.channels.zalo.exceptions import ZaloServerError
from bot.channels.zalo.simulator import ZaloSimulator
from bot.channels.zalo.token_store import DatabaseTokenStore
from config.settings import get_settings
from storage.crypto import PhoneVault
from storage.db import transaction
from storage.models import ZaloOAToken
from storage.zalo_tokens import load_oa_token, save_oa_token
from tests.conftest import SECRET_KEY
from workers.cli import cli


def store_for(
    sim: ZaloSimulator, sessions: sessionmaker[Session], vault: PhoneVault, redis: Redis, **kw: float
) -> DatabaseTokenStore:
    return DatabaseTokenStore(sessions, vault, redis, sim.config.app_id, **kw)


def client_for(sim: ZaloSimulator, store: DatabaseTokenStore) -> ZaloOAClient:
    c = sim.config
    return ZaloOAClient(sim.base_url, sim.base_url, c.app_id, c.app_secret, store)


def test_the_row_is_replaced_and_counts_generations(any_db_url: str) -> None:
    expires = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
    with transaction(any_db_url) as session:
        save_oa_token(session, "app-1", access_token_enc="a1", refresh_token_enc="r1", expires_at=expires)
    with transaction(any_db_url) as session:
        save_oa_token(session, "app-1", access_token_enc="a2", refresh_token_enc="r2", expires_at=expires)
        save_oa_token(session, "app-2", access_token_enc="b1", refresh_token_enc="s1", expires_at=expires)
    with transaction(any_db_url) as session:
        row = load_oa_token(session, "app-1")
        assert row is not None
        assert (row.access_token_enc, row.refresh_token_enc, row.generation) == ("a2", "r2", 2)
        assert row.expires_at == expires
        assert len(session.scalars(select(ZaloOAToken)).all()) == 2
        assert load_oa_token(session, "app-3") is None


async def test_tokens_survive_the_process_and_are_encrypted_at_rest(
    zalo_sim: ZaloSimulator, sessions: sessionmaker[Session], vault: PhoneVault, redis: Redis
) -> None:
    pair = OATokens("at-plain-123", "rt-plain-456", datetime(2026, 11, 23, tzinfo=UTC))
    await store_for(zalo_sim, sessions, vault, redis).save(pair)
    assert await store_for(zalo_sim, sessions, vault, redis).load() == pair
    with sessions() as session:
        row = session.scalars(select(ZaloOAToken)).one()
    assert "at-plain-123" not in row.access_token_enc
    assert "rt-plain-456" not in row.refresh_token_enc


async def test_two_processes_with_a_dead_token_refresh_once_and_both_send(
    zalo_sim: ZaloSimulator, sessions: sessionmaker[Session], vault: PhoneVault, redis: Redis
) -> None:
    access, refresh = zalo_sim.issue_tokens()
    first = store_for(zalo_sim, sessions, vault, redis)
    await first.save(OATokens(access, refresh, datetime.now(UTC) + timedelta(hours=20)))
    second = store_for(zalo_sim, sessions, vault, redis)  # another worker process: its own objects
    zalo_sim.expire_access_tokens()
    async with client_for(zalo_sim, first) as a, client_for(zalo_sim, second) as b:
        await asyncio.gather(*(c.send_cs_message(f"u{i}", f"Câu hỏi {i}") for i, c in enumerate([a, b] * 3)))
    assert len(zalo_sim.oa_sent) == 6
    [grant] = zalo_sim.token_grants
    stored = await second.load()
    assert stored is not None
    assert (stored.access_token, stored.refresh_token) == (grant["access_token"], grant["refresh_token"])
    assert zalo_sim.refresh_token_valid(stored.refresh_token)
    assert not zalo_sim.refresh_token_valid(refresh)
    assert redis.exists(first.lock_name) == 0
    with sessions() as session:
        assert session.scalars(select(ZaloOAToken.generation)).one() == 2


async def test_a_refresher_that_never_finishes_makes_the_others_fail_retryably(
    zalo_sim: ZaloSimulator, sessions: sessionmaker[Session], vault: PhoneVault, redis: Redis
) -> None:
    access, refresh = zalo_sim.issue_tokens()
    store = store_for(zalo_sim, sessions, vault, redis, lock_wait=0.1)
    await store.save(OATokens(access, refresh, datetime.now(UTC) + timedelta(hours=20)))
    zalo_sim.expire_access_tokens()
    held = redis.lock(store.lock_name, timeout=60)
    assert held.acquire(blocking=False)
    try:
        async with client_for(zalo_sim, store) as oa:
            with pytest.raises(ZaloServerError, match="another process") as caught:
                await oa.send_cs_message("u1", "Xin chào")
    finally:
        held.release()
    assert caught.value.retryable
    assert zalo_sim.token_grants == []
    assert zalo_sim.refresh_token_valid(refresh)


@pytest.fixture
def cli_env(
    db_url: str, redis_url: str, zalo_sim: ZaloSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)
    for name, value in {
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_url,
        "SIPAS_SECRET_KEY": SECRET_KEY,
        "ZALO_OA_APP_ID": zalo_sim.config.app_id,
        "ZALO_APP_SECRET": zalo_sim.config.app_secret,
        "ZALO_OAUTH_BASE": zalo_sim.base_url,
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


async def sipas(*args: str) -> tuple[int, str]:
    result = await asyncio.to_thread(CliRunner().invoke, cli, ["zalo", *args])
    return result.exit_code, result.output


async def test_cli_stores_a_refresh_token_by_exchanging_it(
    cli_env: None, zalo_sim: ZaloSimulator, sessions: sessionmaker[Session], vault: PhoneVault, redis: Redis
) -> None:
    assert (await sipas("oa-token-info"))[0] == 1
    _, refresh = zalo_sim.issue_tokens()
    code, output = await sipas("store-oa-token", "--refresh-token", refresh)
    assert code == 0, output
    assert json.loads(output)["expired"] is False
    assert refresh not in output
    [grant] = zalo_sim.token_grants
    stored = await store_for(zalo_sim, sessions, vault, redis).load()
    assert stored is not None
    assert (stored.access_token, stored.refresh_token) == (grant["access_token"], grant["refresh_token"])
    code, output = await sipas("oa-token-info")
    assert code == 0
    assert json.loads(output)["expires_at"] == stored.expires_at.isoformat()


async def test_cli_refuses_a_spent_refresh_token_clearly(cli_env: None) -> None:
    code, output = await sipas("store-oa-token", "--refresh-token", "sim-rt-never-issued")
    assert code == 1
    assert "Zalo refused" in output
    assert "refresh_token" in output


async def test_cli_stores_a_known_pair_as_given(
    cli_env: None, zalo_sim: ZaloSimulator, sessions: sessionmaker[Session], vault: PhoneVault, redis: Redis
) -> None:
    access, refresh = zalo_sim.issue_tokens()
    code, output = await sipas(
        "store-oa-token", "--refresh-token", refresh, "--access-token", access, "--expires-in", "90000"
    )
    assert code == 0, output
    assert zalo_sim.token_grants == []
    stored = await store_for(zalo_sim, sessions, vault, redis).load()
    assert stored is not None
    assert (stored.access_token, stored.refresh_token) == (access, refresh)
    assert not stored.expired()
