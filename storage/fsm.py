"""Conversation state storage, after aiogram 3's FSM storage: a key per conversation, a state
string, a JSON data dict, and a per-conversation lock.

The live copy of a survey's conversation position lives here (Redis in production, memory for
`flows simulate` and pure tests). It is a cache with a lock, not the record: the database row
(`Survey.state` + `state_version`) is written in the same transaction as the answers and wins
whenever the two disagree (flows.survey explains the rule). Keys expire after a few days, longer
than any survey lives, so abandoned conversations clean themselves up.

Synchronous on purpose: workers run RQ jobs and the web app hands blocking work to threads.
"""

from __future__ import annotations

import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from typing import Any, Literal

from redis import Redis
from redis.exceptions import LockError

__all__ = [
    "BaseStateStorage",
    "MemoryStateStorage",
    "RedisStateStorage",
    "StateLockError",
    "StorageKey",
]

DEFAULT_TTL_SECONDS = 7 * 24 * 3600
# A lock holder that dies frees the conversation after LOCK_TIMEOUT; a waiter gives up (and its
# job is retried) after LOCK_WAIT.
LOCK_TIMEOUT_SECONDS = 30.0
LOCK_WAIT_SECONDS = 10.0

Part = Literal["state", "data", "lock"]


@dataclass(frozen=True)
class StorageKey:
    """One conversation: a survey on a channel (a survey that falls back to another channel
    starts a new conversation)."""

    channel: str
    survey_id: int


class StateLockError(RuntimeError):
    """The conversation stayed locked longer than we wait; the caller's job should be retried."""


class BaseStateStorage(ABC):
    """Per-conversation state (a short string) and data (a JSON-able dict), plus a lock."""

    @abstractmethod
    def get_state(self, key: StorageKey) -> str | None: ...

    @abstractmethod
    def get_data(self, key: StorageKey) -> dict[str, Any]: ...

    @abstractmethod
    def set(self, key: StorageKey, state: str | None, data: dict[str, Any]) -> None:
        """Replace state and data together (one atomic write where the backend allows it);
        state None with empty data removes the conversation."""

    def set_state(self, key: StorageKey, state: str | None) -> None:
        self.set(key, state, self.get_data(key))

    def set_data(self, key: StorageKey, data: dict[str, Any]) -> None:
        self.set(key, self.get_state(key), data)

    def clear(self, key: StorageKey) -> None:
        self.set(key, None, {})

    @abstractmethod
    def lock(self, key: StorageKey) -> AbstractContextManager[None]:
        """Hold the conversation: one reply of a citizen at a time is interpreted."""


class RedisStateStorage(BaseStateStorage):
    """State in Redis under `<prefix>:<channel>:<survey_id>:<part>`, JSON data, TTL, redis-py Lock."""

    def __init__(
        self,
        redis: Redis,
        prefix: str = "sipas:fsm",
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        lock_timeout: float = LOCK_TIMEOUT_SECONDS,
        lock_wait: float = LOCK_WAIT_SECONDS,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl_seconds = ttl_seconds
        self.lock_timeout = lock_timeout
        self.lock_wait = lock_wait

    def build_key(self, key: StorageKey, part: Part) -> str:
        return f"{self.prefix}:{key.channel}:{key.survey_id}:{part}"

    def get_state(self, key: StorageKey) -> str | None:
        value = self.redis.get(self.build_key(key, "state"))
        return value.decode("utf-8") if isinstance(value, bytes) else value

    def get_data(self, key: StorageKey) -> dict[str, Any]:
        value = self.redis.get(self.build_key(key, "data"))
        if value is None:
            return {}
        try:
            data = json.loads(value)
        except ValueError:
            return {}  # unreadable cache: the database copy takes over
        return data if isinstance(data, dict) else {}

    def set(self, key: StorageKey, state: str | None, data: dict[str, Any]) -> None:
        state_key, data_key = self.build_key(key, "state"), self.build_key(key, "data")
        with self.redis.pipeline(transaction=True) as pipe:
            if state is None:
                pipe.delete(state_key)
            else:
                pipe.set(state_key, state, ex=self.ttl_seconds)
            if data:
                pipe.set(data_key, json.dumps(data, separators=(",", ":")), ex=self.ttl_seconds)
            else:
                pipe.delete(data_key)
            pipe.execute()

    @contextmanager
    def lock(self, key: StorageKey) -> Iterator[None]:
        lock = self.redis.lock(
            self.build_key(key, "lock"), timeout=self.lock_timeout, blocking_timeout=self.lock_wait
        )
        if not lock.acquire():
            raise StateLockError(f"conversation {key.channel}:{key.survey_id} is busy")
        try:
            yield
        finally:
            # LockError: it expired while we worked; the database row lock still kept us safe.
            with suppress(LockError):
                lock.release()


class MemoryStateStorage(BaseStateStorage):
    """In-process storage for `flows simulate` and tests of the pure engine."""

    def __init__(self, lock_wait: float = LOCK_WAIT_SECONDS) -> None:
        self._states: dict[StorageKey, str] = {}
        self._data: dict[StorageKey, dict[str, Any]] = {}
        self._locks: dict[StorageKey, threading.Lock] = {}
        self._guard = threading.Lock()
        self.lock_wait = lock_wait

    def get_state(self, key: StorageKey) -> str | None:
        return self._states.get(key)

    def get_data(self, key: StorageKey) -> dict[str, Any]:
        copy: dict[str, Any] = json.loads(json.dumps(self._data.get(key, {})))  # as Redis would give
        return copy

    def set(self, key: StorageKey, state: str | None, data: dict[str, Any]) -> None:
        if state is None:
            self._states.pop(key, None)
        else:
            self._states[key] = state
        if data:
            self._data[key] = json.loads(json.dumps(data))
        else:
            self._data.pop(key, None)

    @contextmanager
    def lock(self, key: StorageKey) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        if not lock.acquire(timeout=self.lock_wait):
            raise StateLockError(f"conversation {key.channel}:{key.survey_id} is busy")
        try:
            yield
        finally:
            lock.release()
