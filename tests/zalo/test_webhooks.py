"""The Zalo webhooks through the real app (create_app) and real HTTP, the simulator as Zalo.

Refused requests store nothing; accepted ones are stored (encrypted, raw) before the 200 and
handed over once; a redelivery is answered `duplicate` and not handed over again.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from redis import Redis
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.channels.zalo.events import body_hash
from bot.channels.zalo.simulator import ZaloSimulator
from bot.channels.zalo.simulator.citizen import (
    BOT_UNSUPPORTED,
    bot_update,
    feedback_event,
    oa_follow_event,
    oa_text_event,
)
from config.settings import Settings
from storage.crypto import PhoneVault
from storage.models import InboundEvent
from tests.support.app import RecordingDispatcher, app_client
from tests.zalo.conftest import BOT_SECRET, load_fixture

BOT_PATH = "/webhooks/zalo/bot"
OA_PATH = "/webhooks/zalo/oa"


@pytest.fixture
async def web(
    zalo_settings: Settings,
    sessions: sessionmaker[Session],
    vault: PhoneVault,
    redis: Redis,
    dispatcher: RecordingDispatcher,
) -> AsyncIterator[TestClient[Any, Any]]:
    async with app_client(zalo_settings, sessions, vault, redis, dispatcher) as client:
        yield client


@pytest.fixture
def url(web: TestClient[Any, Any]) -> Callable[[str], str]:
    return lambda path: str(web.make_url(path))


def stored(sessions: sessionmaker[Session]) -> list[InboundEvent]:
    with sessions() as session:
        return list(session.scalars(select(InboundEvent).order_by(InboundEvent.id)))


def now_ms() -> int:
    return int(time.time() * 1000)


# --- Bot Platform -----------------------------------------------------------------------------


@pytest.mark.parametrize("wrapped", [True, False])
async def test_bot_event_is_stored_encrypted_then_dispatched(
    zalo_sim: ZaloSimulator,
    url: Callable[[str], str],
    sessions: sessionmaker[Session],
    vault: PhoneVault,
    dispatcher: RecordingDispatcher,
    wrapped: bool,
) -> None:
    update = bot_update("6ede9afa66b88fe6d6a9", "Rất hài lòng", message_id="msg-001")
    status, answer = await zalo_sim.deliver_bot_event(
        url(BOT_PATH), update, secret=BOT_SECRET, wrapped=wrapped
    )
    assert (status, answer) == (200, {"status": "stored"})
    [event] = stored(sessions)
    assert (event.provider, event.kind, event.provider_id) == ("zalo_bot", "message.text.received", "msg-001")
    assert event.sender_hash == vault.lookup_hash("6ede9afa66b88fe6d6a9")
    assert "Rất hài lòng" not in event.payload_enc
    raw = json.loads(vault.decrypt(event.payload_enc))
    assert raw == ({"ok": True, "result": update} if wrapped else update)
    assert dispatcher.inbound == [event.id]


async def test_the_same_message_id_twice_is_stored_and_dispatched_once(
    zalo_sim: ZaloSimulator,
    url: Callable[[str], str],
    sessions: sessionmaker[Session],
    dispatcher: RecordingDispatcher,
) -> None:
    update = bot_update("u-1", "5", message_id="msg-dup")
    first = await zalo_sim.deliver_bot_event(url(BOT_PATH), update, secret=BOT_SECRET)
    again = await zalo_sim.deliver_bot_event(url(BOT_PATH), update, secret=BOT_SECRET, wrapped=False)
    assert first == (200, {"status": "stored"})
    assert again == (200, {"status": "duplicate"})
    assert len(stored(sessions)) == 1
    assert len(dispatcher.inbound) == 1


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-Bot-Api-Secret-Token": "wrong-secret-000"}, {"X-Bot-Api-Secret-Token": BOT_SECRET + "x"}],
)
async def test_bot_event_with_a_missing_or_wrong_secret_is_refused(
    zalo_sim: ZaloSimulator,
    url: Callable[[str], str],
    sessions: sessionmaker[Session],
    dispatcher: RecordingDispatcher,
    headers: dict[str, str],
) -> None:
    body = json.dumps({"ok": True, "result": bot_update("u-1", "1")}).encode()
    status, answer = await zalo_sim.post_raw(url(BOT_PATH), body, headers)
    assert status == 401
    assert answer["error"] == "bad_secret"
    assert stored(sessions) == []
    assert dispatcher.inbound == []


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b'{"ok": true, "result": {"event_name": ', "malformed_json"),
        (b"\xff\xfe{}", "bad_encoding"),
        (b"[1, 2, 3]", "not_an_event"),
        (b'{"ok": true, "result": {"message": {}}}', "not_an_event"),
    ],
)
async def test_bot_bodies_that_are_not_events_are_refused(
    zalo_sim: ZaloSimulator,
    url: Callable[[str], str],
    sessions: sessionmaker[Session],
    body: bytes,
    error: str,
) -> None:
    status, answer = await zalo_sim.post_raw(url(BOT_PATH), body, {"X-Bot-Api-Secret-Token": BOT_SECRET})
    assert status == 400
    assert answer["error"] == error
    assert answer["message"]
    assert stored(sessions) == []


@pytest.mark.parametrize("path", [BOT_PATH, OA_PATH])
async def test_a_1_mb_body_is_refused_with_413(
    zalo_sim: ZaloSimulator, url: Callable[[str], str], sessions: sessionmaker[Session], path: str
) -> None:
    big = json.dumps({"event_name": "message.text.received", "pad": "x" * 1_000_000}).encode()
    headers = {"X-Bot-Api-Secret-Token": BOT_SECRET, "X-ZEvent-Signature": "mac=00"}
    status, answer = await zalo_sim.post_raw(url(path), big, headers)
    assert status == 413
    assert answer["error"] == "payload_too_large"
    assert stored(sessions) == []


async def test_an_oversized_chunked_body_without_length_is_refused(
    zalo_sim: ZaloSimulator, url: Callable[[str], str], sessions: sessionmaker[Session]
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(80):
            yield b"x" * 1024

    async with zalo_sim.session.post(
        url(BOT_PATH), data=chunks(), headers={"X-Bot-Api-Secret-Token": BOT_SECRET}
    ) as response:
        assert response.status == 413
        assert (await response.json())["error"] == "payload_too_large"
    assert stored(sessions) == []


async def test_unsupported_and_unknown_bot_events_are_stored_too(
    zalo_sim: ZaloSimulator, url: Callable[[str], str], sessions: sessionmaker[Session]
) -> None:
    unsupported = bot_update("u-2", event_name=BOT_UNSUPPORTED, message_id="msg-unsup")
    unknown = {"event_name": "message.location.received", "note": "no message id"}
    assert (await zalo_sim.deliver_bot_event(url(BOT_PATH), unsupported, secret=BOT_SECRET))[0] == 200
    assert (await zalo_sim.deliver_bot_event(url(BOT_PATH), unknown, secret=BOT_SECRET))[0] == 200
    events = stored(sessions)
    assert [(e.kind, e.provider_id) for e in events] == [
        ("message.unsupported.received", "msg-unsup"),
        ("message.location.received", body_hash(unknown)),
    ]
    assert events[1].sender_hash is None


async def test_bot_webhook_without_a_configured_secret_refuses_everything(
    zalo_sim: ZaloSimulator,
    settings: Settings,
    sessions: sessionmaker[Session],
    vault: PhoneVault,
    redis: Redis,
    dispatcher: RecordingDispatcher,
) -> None:
    async with app_client(settings, sessions, vault, redis, dispatcher) as client:
        status, answer = await zalo_sim.post_raw(
            str(client.make_url(BOT_PATH)),
            json.dumps(bot_update("u", "1")).encode(),
            {"X-Bot-Api-Secret-Token": ""},
        )
    assert status == 503
    assert answer["error"] == "not_configured"
    assert stored(sessions) == []


async def test_a_failing_hand_over_still_acknowledges_the_stored_event(
    zalo_sim: ZaloSimulator,
    zalo_settings: Settings,
    sessions: sessionmaker[Session],
    vault: PhoneVault,
    redis: Redis,
) -> None:
    """The event is committed before the hand-over; the sweep of unprocessed events recovers it."""

    down_queue = RecordingDispatcher(fail=True)
    async with app_client(zalo_settings, sessions, vault, redis, down_queue) as client:
        status, answer = await zalo_sim.deliver_bot_event(
            str(client.make_url(BOT_PATH)), bot_update("u", "3", message_id="m-down"), secret=BOT_SECRET
        )
    assert (status, answer) == (200, {"status": "stored"})
    [event] = stored(sessions)
    assert event.processed_at is None


# --- Official Account -------------------------------------------------------------------------


async def test_oa_text_event_signed_correctly_is_stored(
    zalo_sim: ZaloSimulator,
    url: Callable[[str], str],
    sessions: sessionmaker[Session],
    vault: PhoneVault,
    dispatcher: RecordingDispatcher,
) -> None:
    c = zalo_sim.config
    event = oa_text_event(c.app_id, c.oa_id, "2468013579246801357", "Tốt", msg_id="oa-msg-1")
    status, answer = await zalo_sim.deliver_oa_event(url(OA_PATH), event)
    assert (status, answer) == (200, {"status": "stored"})
    [row] = stored(sessions)
    assert (row.provider, row.kind, row.provider_id) == (
        "zalo_oa",
        "user_send_text",
        "user_send_text:oa-msg-1",
    )
    assert row.sender_hash == vault.lookup_hash("2468013579246801357")
    assert json.loads(vault.decrypt(row.payload_enc)) == event
    assert dispatcher.inbound == [row.id]
    again = await zalo_sim.deliver_oa_event(url(OA_PATH), event)
    assert again == (200, {"status": "duplicate"})
    assert dispatcher.inbound == [row.id]


async def test_oa_fixtures_with_fresh_timestamps_are_all_stored(
    zalo_sim: ZaloSimulator, url: Callable[[str], str], sessions: sessionmaker[Session], vault: PhoneVault
) -> None:
    names = ["user_send_text", "follow", "unfollow", "user_received_message", "user_feedback"]
    for name in names:
        event = load_fixture(f"oa/{name}.json")
        event["timestamp"] = str(now_ms())
        assert await zalo_sim.deliver_oa_event(url(OA_PATH), event) == (200, {"status": "stored"})
    rows = stored(sessions)
    assert [r.kind for r in rows] == names
    by_kind = {r.kind: r for r in rows}
    assert by_kind["user_feedback"].provider_id == "user_feedback:7e4c33cfc20b05575c18"
    assert by_kind["user_feedback"].sender_hash is None
    assert by_kind["follow"].provider_id.startswith("follow:sha256:")
    assert by_kind["follow"].sender_hash == vault.lookup_hash("2468013579246801357")
    assert by_kind["user_received_message"].provider_id == "user_received_message:f0e1d2c3b4a596877869"


async def test_a_rating_and_the_delivery_of_the_same_zns_message_are_two_events(
    zalo_sim: ZaloSimulator, url: Callable[[str], str], sessions: sessionmaker[Session]
) -> None:
    c = zalo_sim.config
    received = load_fixture("oa/user_received_message.json")
    received["timestamp"] = str(now_ms())
    rating = feedback_event(c.app_id, c.oa_id, received["message"]["msg_id"], 4, tracking_id="1956")
    assert (await zalo_sim.deliver_oa_event(url(OA_PATH), received))[1] == {"status": "stored"}
    assert (await zalo_sim.deliver_oa_event(url(OA_PATH), rating))[1] == {"status": "stored"}
    assert (await zalo_sim.deliver_oa_event(url(OA_PATH), rating))[1] == {"status": "duplicate"}
    assert len(stored(sessions)) == 2


async def test_a_repeated_follow_body_is_a_duplicate(
    zalo_sim: ZaloSimulator, url: Callable[[str], str], sessions: sessionmaker[Session]
) -> None:
    c = zalo_sim.config
    follow = oa_follow_event(c.app_id, c.oa_id, "u-7")
    assert (await zalo_sim.deliver_oa_event(url(OA_PATH), follow))[1] == {"status": "stored"}
    assert (await zalo_sim.deliver_oa_event(url(OA_PATH), follow))[1] == {"status": "duplicate"}
    later = oa_follow_event(c.app_id, c.oa_id, "u-7", timestamp=now_ms() + 1000)
    assert (await zalo_sim.deliver_oa_event(url(OA_PATH), later))[1] == {"status": "stored"}
    assert len(stored(sessions)) == 2


async def test_oa_event_with_a_wrong_signature_is_refused(
    zalo_sim: ZaloSimulator,
    url: Callable[[str], str],
    sessions: sessionmaker[Session],
    dispatcher: RecordingDispatcher,
) -> None:
    c = zalo_sim.config
    event = oa_text_event(c.app_id, c.oa_id, "u-1", "Tốt")
    forged_key = await zalo_sim.deliver_oa_event(url(OA_PATH), event, key="attacker-key")
    forged_mac = await zalo_sim.deliver_oa_event(url(OA_PATH), event, signature="0" * 64)
    raw = json.dumps(event).encode()
    missing = await zalo_sim.post_raw(url(OA_PATH), raw, {})
    for status, answer in (forged_key, forged_mac, missing):
        assert status == 401
        assert answer["error"] == "bad_signature"
    assert stored(sessions) == []
    assert dispatcher.inbound == []


async def test_a_correct_signature_over_another_body_is_refused(
    zalo_sim: ZaloSimulator, url: Callable[[str], str], sessions: sessionmaker[Session]
) -> None:
    """Signature of a genuine event, body altered (the rating changed from 1 to 5 stars)."""
    from bot.channels.zalo.simulator.citizen import oa_signature

    c = zalo_sim.config
    genuine = feedback_event(c.app_id, c.oa_id, "zns-1", 1, tracking_id="42")
    raw = json.dumps(genuine)
    mac = oa_signature(c.app_id, raw, genuine["timestamp"], c.oa_secret_key)
    tampered = raw.replace('"rate": 1', '"rate": 5').encode()
    status, answer = await zalo_sim.post_raw(url(OA_PATH), tampered, {"X-ZEvent-Signature": f"mac={mac}"})
    assert (status, answer["error"]) == (401, "bad_signature")
    assert stored(sessions) == []


@pytest.mark.parametrize(
    ("shift_ms", "error"), [(-25 * 3600 * 1000, "stale_event"), (11 * 60 * 1000, "future_event")]
)
async def test_a_day_old_or_future_event_is_refused(
    zalo_sim: ZaloSimulator,
    url: Callable[[str], str],
    sessions: sessionmaker[Session],
    shift_ms: int,
    error: str,
) -> None:
    c = zalo_sim.config
    event = oa_text_event(c.app_id, c.oa_id, "u-1", "Tốt", timestamp=now_ms() + shift_ms)
    status, answer = await zalo_sim.deliver_oa_event(url(OA_PATH), event)  # correctly signed
    assert (status, answer["error"]) == (403, error)
    assert stored(sessions) == []


async def test_an_event_zalo_retries_after_our_outage_is_stored_and_a_replay_is_a_duplicate(
    zalo_sim: ZaloSimulator, url: Callable[[str], str], sessions: sessionmaker[Session]
) -> None:
    """Zalo retries with the original body and timestamp for about an hour."""
    c = zalo_sim.config
    event = oa_text_event(c.app_id, c.oa_id, "u-1", "Tốt", msg_id="late-1", timestamp=now_ms() - 3600 * 1000)
    assert await zalo_sim.deliver_oa_event(url(OA_PATH), event) == (200, {"status": "stored"})
    assert await zalo_sim.deliver_oa_event(url(OA_PATH), event) == (200, {"status": "duplicate"})
    assert len(stored(sessions)) == 1


async def test_an_event_for_another_app_is_refused(
    zalo_sim: ZaloSimulator, url: Callable[[str], str], sessions: sessionmaker[Session]
) -> None:
    event = oa_text_event("9999999999", zalo_sim.config.oa_id, "u-1", "Tốt")
    status, answer = await zalo_sim.deliver_oa_event(url(OA_PATH), event)
    assert (status, answer["error"]) == (403, "wrong_app")
    assert stored(sessions) == []


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"{not json", "malformed_json"),
        (b'"a string"', "not_an_event"),
        (b'{"event_name": "follow"}', "not_an_event"),
    ],
)
async def test_oa_bodies_that_are_not_events_are_refused(
    zalo_sim: ZaloSimulator,
    url: Callable[[str], str],
    sessions: sessionmaker[Session],
    body: bytes,
    error: str,
) -> None:
    status, answer = await zalo_sim.post_raw(url(OA_PATH), body, {"X-ZEvent-Signature": "mac=00"})
    assert (status, answer["error"]) == (400, error)
    assert stored(sessions) == []


async def test_the_signing_key_can_be_the_app_secret(
    zalo_sim: ZaloSimulator,
    zalo_settings: Settings,
    sessions: sessionmaker[Session],
    vault: PhoneVault,
    redis: Redis,
    dispatcher: RecordingDispatcher,
) -> None:
    c = zalo_sim.config
    settings = zalo_settings.model_copy(update={"ZALO_OA_SIGNATURE_KEY": "app_secret"})
    async with app_client(settings, sessions, vault, redis, dispatcher) as client:
        target = str(client.make_url(OA_PATH))
        with_oa_key = await zalo_sim.deliver_oa_event(target, oa_text_event(c.app_id, c.oa_id, "u", "a"))
        with_app_secret = await zalo_sim.deliver_oa_event(
            target, oa_text_event(c.app_id, c.oa_id, "u", "b"), key=c.app_secret
        )
    assert with_oa_key[0] == 401
    assert with_app_secret == (200, {"status": "stored"})
    assert len(stored(sessions)) == 1
