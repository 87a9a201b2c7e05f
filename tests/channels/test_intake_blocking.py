"""`store_and_wake_blocking`, the store path of callers without an event loop (`sipas zalo poll`,
the ZNS rating reconciliation): stored once per provider id, encrypted, committed before the
hand-over, handed over once; a failed hand-over leaves the event stored for the sweep."""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.channels import zalo_bot
from bot.channels.intake import store_and_wake_blocking
from storage.crypto import PhoneVault
from storage.models import InboundEvent
from tests.support.app import RecordingDispatcher

CHAT = "6ede9afa66b88fe6d6a9"
UPDATE = {
    "event_name": "message.text.received",
    "message": {"from": {"id": CHAT}, "chat": {"id": CHAT}, "text": "5", "message_id": "m-1", "date": 1},
}


def _store(sessions: sessionmaker[Session], vault: PhoneVault, dispatcher: RecordingDispatcher) -> int:
    record = zalo_bot.describe_bot_event(UPDATE)
    stored = store_and_wake_blocking(
        sessions, vault, dispatcher, provider=record.provider, kind=record.kind,
        provider_id=record.provider_id, payload=json.dumps(UPDATE), sender=record.sender,
    )  # fmt: skip
    return stored.event_id


def _events(sessions: sessionmaker[Session]) -> list[InboundEvent]:
    with sessions() as session:
        return list(session.scalars(select(InboundEvent)))


def test_stored_once_encrypted_and_handed_over_once(
    sessions: sessionmaker[Session], vault: PhoneVault
) -> None:
    dispatcher = RecordingDispatcher()
    first = _store(sessions, vault, dispatcher)
    again = _store(sessions, vault, dispatcher)  # getUpdates has no offset: the same update again
    [event] = _events(sessions)
    assert first == again == event.id
    assert dispatcher.inbound == [event.id]
    assert (event.provider, event.kind, event.provider_id) == ("zalo_bot", "message.text.received", "m-1")
    assert event.sender_hash == vault.lookup_hash(CHAT)
    assert CHAT not in event.payload_enc
    assert zalo_bot.parse_stored(vault.decrypt(event.payload_enc)).text == "5"


def test_a_failed_hand_over_leaves_the_event_stored_for_the_sweep(
    sessions: sessionmaker[Session], vault: PhoneVault
) -> None:
    event_id = _store(sessions, vault, RecordingDispatcher(fail=True))  # Redis down: no exception
    [event] = _events(sessions)
    assert (event.id, event.processed_at) == (event_id, None)
