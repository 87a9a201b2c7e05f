"""A drain batch holds its senders (storage.inbound.try_lock_senders): all asked in one statement,
those another transaction holds left to it, and held until the batch's transaction ends."""

from __future__ import annotations

from storage.db import session_factory
from storage.inbound import try_lock_senders


def test_senders_held_elsewhere_are_left_and_freed_at_commit(any_db_url: str) -> None:
    sessions = session_factory(any_db_url)
    postgres = any_db_url.startswith("postgresql")
    with sessions() as first, first.begin():
        assert try_lock_senders(first, ["kannel:a", "kannel:b"]) == {"kannel:a", "kannel:b"}
        if postgres:  # SQLite has one writer at a time: a second batch could not even start
            with sessions() as second, second.begin():
                assert try_lock_senders(second, ["kannel:b", "kannel:c", "event:7"]) == {
                    "kannel:c",
                    "event:7",
                }
                # Asking again for what this transaction holds keeps it held.
                assert try_lock_senders(second, ["kannel:c"]) == {"kannel:c"}
    with sessions() as later, later.begin():
        assert try_lock_senders(later, ["kannel:a", "kannel:b", "kannel:c"]) == {
            "kannel:a",
            "kannel:b",
            "kannel:c",
        }
        assert try_lock_senders(later, []) == set()
