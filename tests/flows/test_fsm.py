"""Conversation state storage: the Redis backend (real server) and the in-memory one behave alike."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from redis import Redis

from storage.fsm import BaseStateStorage, MemoryStateStorage, RedisStateStorage, StateLockError, StorageKey

KEY = StorageKey("sms", 42)


@pytest.fixture(params=["redis", "memory"])
def storage(request: pytest.FixtureRequest) -> Iterator[BaseStateStorage]:
    if request.param == "redis":
        redis: Redis = request.getfixturevalue("redis")
        yield RedisStateStorage(redis, lock_wait=0.2)
    else:
        yield MemoryStateStorage(lock_wait=0.2)


def test_state_and_data_round_trip(storage: BaseStateStorage) -> None:
    assert storage.get_state(KEY) is None
    assert storage.get_data(KEY) == {}
    storage.set(KEY, "overall", {"question": "overall", "version": 1})
    assert storage.get_state(KEY) == "overall"
    assert storage.get_data(KEY) == {"question": "overall", "version": 1}
    storage.set_state(KEY, "cong_chuc")
    storage.set_data(KEY, {"question": "cong_chuc", "version": 2})
    assert (storage.get_state(KEY), storage.get_data(KEY)["version"]) == ("cong_chuc", 2)
    assert storage.get_state(StorageKey("zalo", 42)) is None  # channel is part of the key
    storage.clear(KEY)
    assert storage.get_state(KEY) is None
    assert storage.get_data(KEY) == {}


def test_returned_data_is_a_copy(storage: BaseStateStorage) -> None:
    storage.set(KEY, "overall", {"events": [1]})
    storage.get_data(KEY)["events"].append(2)
    assert storage.get_data(KEY) == {"events": [1]}


def test_lock_is_exclusive_per_conversation(storage: BaseStateStorage) -> None:
    outcome: list[str] = []

    def contender(key: StorageKey) -> None:
        try:
            with storage.lock(key):
                outcome.append("acquired")
        except StateLockError:
            outcome.append("busy")

    with storage.lock(KEY):
        for key in (KEY, StorageKey("sms", 43)):
            thread = threading.Thread(target=contender, args=(key,))
            thread.start()
            thread.join()
    assert outcome == ["busy", "acquired"]
    with storage.lock(KEY):  # released on exit
        outcome.append("again")
    assert outcome[-1] == "again"


def test_redis_layout_ttl_and_unreadable_data(redis: Redis) -> None:
    storage = RedisStateStorage(redis, prefix="sipas:fsm", ttl_seconds=3600)
    storage.set(KEY, "overall", {"version": 1})
    assert sorted(redis.keys("sipas:fsm:*")) == [b"sipas:fsm:sms:42:data", b"sipas:fsm:sms:42:state"]
    assert 0 < redis.ttl("sipas:fsm:sms:42:data") <= 3600
    assert 0 < redis.ttl("sipas:fsm:sms:42:state") <= 3600
    redis.set("sipas:fsm:sms:42:data", b"{not json")
    assert storage.get_data(KEY) == {}
    redis.set("sipas:fsm:sms:42:data", b"[1, 2]")
    assert storage.get_data(KEY) == {}


def test_redis_lock_released_after_an_error(redis: Redis) -> None:
    storage = RedisStateStorage(redis, lock_wait=0.2)
    with pytest.raises(ValueError, match="boom"), storage.lock(KEY):
        raise ValueError("boom")
    assert redis.get("sipas:fsm:sms:42:lock") is None
