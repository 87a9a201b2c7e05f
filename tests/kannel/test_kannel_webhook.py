"""The Kannel webhooks through the real app: what is stored, when, and what is refused."""

from __future__ import annotations

import json
from urllib.parse import quote, urlencode

import pytest
from redis import Redis
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.channels.kannel import dlr_token
from bot.channels.kannel.webhooks import MAX_PARAMS_BYTES
from config.settings import Settings
from storage import outbox
from storage.crypto import PhoneVault
from storage.db import make_engine
from storage.models import Channel, InboundEvent, OutboundMessage, OutboxStatus
from tests.support.app import Client, RecordingDispatcher, app_client
from tests.support.services import free_port

MO = "/webhooks/sms/kannel"
DLR = "/webhooks/sms/kannel/dlr"
TOKEN = "mo-token-test-0123"  # tests/conftest.py settings


def mo_params(**overrides: str) -> dict[str, str]:
    params = {
        "token": TOKEN,
        "from": "84912345678",
        "to": "8040",
        "text": "Rất hài lòng",
        "id": "2baa987e-dbba-496f-9d3d-dc94719a4cc3",
        "ts": "2026-11-22 02:55:49",
    }
    params.update(overrides)
    return params


def events(sessions: sessionmaker[Session]) -> list[InboundEvent]:
    with sessions() as session:
        return list(session.scalars(select(InboundEvent).order_by(InboundEvent.id)))


async def test_mo_is_stored_encrypted_then_dispatched(
    client: Client,
    sessions: sessionmaker[Session],
    vault: PhoneVault,
    dispatcher: RecordingDispatcher,
) -> None:
    response = await client.get(MO, params=mo_params())
    assert response.status == 200
    assert await response.text() == ""
    [event] = events(sessions)
    assert (event.provider, event.kind, event.provider_id) == ("kannel", "mo", mo_params()["id"])
    assert event.sender_hash == vault.lookup_hash("+84912345678")
    assert "84912345678" not in event.payload_enc
    payload = json.loads(vault.decrypt(event.payload_enc))
    assert payload == {key: value for key, value in mo_params().items() if key != "token"}
    assert event.processed_at is None
    assert dispatcher.inbound == [event.id]


async def test_sender_hash_matches_any_spelling_of_the_number(
    client: Client, sessions: sessionmaker[Session], vault: PhoneVault
) -> None:
    await client.get(MO, params=mo_params(**{"from": "0912345678", "id": "a"}))
    await client.get(MO, params=mo_params(**{"from": "+84912345678", "id": "b"}))
    hashes = {event.sender_hash for event in events(sessions)}
    assert hashes == {vault.lookup_hash("+84912345678")}


async def test_unparsable_sender_is_stored_with_the_hash_of_what_was_sent(
    client: Client, sessions: sessionmaker[Session], vault: PhoneVault
) -> None:
    response = await client.get(MO, params=mo_params(**{"from": "VIETTEL"}))
    assert response.status == 200
    [event] = events(sessions)
    assert event.sender_hash == vault.lookup_hash("VIETTEL")


async def test_post_form_is_accepted(client: Client, sessions: sessionmaker[Session]) -> None:
    response = await client.post(MO, data=mo_params())
    assert response.status == 200
    assert len(events(sessions)) == 1


async def test_duplicate_id_is_acknowledged_but_not_stored_or_dispatched_twice(
    client: Client, sessions: sessionmaker[Session], dispatcher: RecordingDispatcher
) -> None:
    first = await client.get(MO, params=mo_params())
    again = await client.get(MO, params=mo_params(text="a retry carries the same id"))
    assert (first.status, again.status) == (200, 200)
    [event] = events(sessions)
    assert dispatcher.inbound == [event.id]


@pytest.mark.parametrize(
    ("token", "status", "error"),
    [(None, 401, "missing_token"), ("", 401, "missing_token"), ("mo-token-tesT", 403, "bad_token")],
)
async def test_wrong_token_is_refused_and_nothing_stored(
    client: Client,
    sessions: sessionmaker[Session],
    dispatcher: RecordingDispatcher,
    token: str | None,
    status: int,
    error: str,
) -> None:
    params = mo_params()
    if token is None:
        del params["token"]
    else:
        params["token"] = token
    response = await client.get(MO, params=params)
    assert response.status == status
    body = await response.json()
    assert body["error"] == error
    assert body["message"]
    assert events(sessions) == []
    assert dispatcher.inbound == []


async def test_unset_token_refuses_everything(
    settings: Settings,
    sessions: sessionmaker[Session],
    vault: PhoneVault,
    redis: Redis,
    dispatcher: RecordingDispatcher,
) -> None:
    unset = settings.model_copy(update={"KANNEL_MO_TOKEN": ""})
    async with app_client(unset, sessions, vault, redis, dispatcher) as unset_client:
        response = await unset_client.get(MO, params=mo_params(token=""))
        assert response.status == 503
        assert (await response.json())["error"] == "not_configured"
    assert events(sessions) == []


@pytest.mark.parametrize(
    ("missing", "error"),
    [("id", "missing_field"), ("from", "missing_field"), ("text", "missing_field")],
)
async def test_missing_fields_are_refused(
    client: Client, sessions: sessionmaker[Session], missing: str, error: str
) -> None:
    params = mo_params()
    del params[missing]
    response = await client.get(MO, params=params)
    assert response.status == 400
    body = await response.json()
    assert body["error"] == error
    assert missing in body["message"]
    assert events(sessions) == []


async def test_empty_id_is_refused(client: Client, sessions: sessionmaker[Session]) -> None:
    response = await client.get(MO, params=mo_params(id=""))
    assert response.status == 400
    assert events(sessions) == []


async def test_text_that_is_not_utf8_is_refused(client: Client, sessions: sessionmaker[Session]) -> None:
    # "Tốt" in Windows-1258 bytes, as a gateway without mo-recode/charset settings might send it.
    query = urlencode({k: v for k, v in mo_params().items() if k != "text"}) + "&text=T%D4%EC%F4t"
    response = await client.get(f"{MO}?{query}")
    assert response.status == 400
    assert (await response.json())["error"] == "bad_encoding"
    assert events(sessions) == []


async def test_form_body_that_is_not_ascii_is_refused(
    client: Client, sessions: sessionmaker[Session]
) -> None:
    body = urlencode(mo_params()).encode("ascii") + b"&note=\xff"
    response = await client.post(MO, data=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status == 400
    assert (await response.json())["error"] == "bad_encoding"
    assert events(sessions) == []


async def test_json_body_is_refused(client: Client, sessions: sessionmaker[Session]) -> None:
    response = await client.post(MO, json=mo_params())
    assert response.status == 415
    assert (await response.json())["error"] == "unsupported_media_type"
    assert events(sessions) == []


async def test_oversize_query_is_refused(client: Client, sessions: sessionmaker[Session]) -> None:
    query = urlencode(mo_params()) + "&text2=" + quote("ư" * (MAX_PARAMS_BYTES // 6 + 1))
    assert MAX_PARAMS_BYTES < len(query) < 8000  # under aiohttp's own request-line limit
    response = await client.get(f"{MO}?{query}")
    assert response.status == 413
    assert (await response.json())["error"] == "payload_too_large"
    assert events(sessions) == []


async def test_oversize_body_is_refused(client: Client, sessions: sessionmaker[Session]) -> None:
    response = await client.post(MO, data=mo_params(text="a" * (MAX_PARAMS_BYTES + 1)))
    assert response.status == 413
    assert events(sessions) == []


async def test_too_many_fields_are_refused(client: Client, sessions: sessionmaker[Session]) -> None:
    query = urlencode(mo_params()) + "".join(f"&f{i}=1" for i in range(40))
    response = await client.get(f"{MO}?{query}")
    assert response.status == 400
    assert (await response.json())["error"] == "too_many_fields"
    assert events(sessions) == []


async def test_dispatch_failure_still_acknowledges_the_stored_mo(
    client: Client, sessions: sessionmaker[Session], dispatcher: RecordingDispatcher
) -> None:
    dispatcher.fail = True  # Redis down: the event is stored, the sweep will queue it
    response = await client.get(MO, params=mo_params())
    assert response.status == 200
    [event] = events(sessions)
    assert event.processed_at is None


async def test_put_is_not_allowed(client: Client) -> None:
    response = await client.put(MO, params=mo_params())
    assert response.status == 405
    assert (await response.json())["error"] == "method_not_allowed"


# --- delivery reports ----------------------------------------------------------------------


def add_message(sessions: sessionmaker[Session], vault: PhoneVault) -> int:
    with sessions() as session, session.begin():
        message = outbox.add_message(
            session,
            dedupe_key="test:dlr",
            channel=Channel.SMS,
            recipient_enc=vault.encrypt("+84912345678"),
            text="Cam on ban",
        )
        message.status = OutboxStatus.SENT
        session.flush()
        return message.id


def dlr_params(ref: int | str, status: str, ts: str = "1795316137") -> dict[str, str]:
    """What Kannel calls our dlr-url with, for outbox row `ref`."""
    return {"ref": str(ref), "msg": "abc", "token": dlr_token(TOKEN, str(ref)), "status": status, "ts": ts}


def message(sessions: sessionmaker[Session], message_id: int) -> OutboundMessage:
    with sessions() as session:
        row = session.get(OutboundMessage, message_id)
        assert row is not None
        return row


async def test_dlrs_are_stored_and_applied_in_any_order(
    client: Client,
    sessions: sessionmaker[Session],
    dispatcher: RecordingDispatcher,
    vault: PhoneVault,
) -> None:
    message_id = add_message(sessions, vault)
    delivered = await client.get(DLR, params=dlr_params(message_id, "1"))
    assert delivered.status == 200
    assert await delivered.json() == {"result": "applied delivered (kannel 1 delivered)"}
    accepted = await client.get(DLR, params=dlr_params(message_id, "8"))  # arrives after the final report
    assert await accepted.json() == {"result": "applied accepted (kannel 8 smsc_accepted)"}
    row = message(sessions, message_id)
    assert row.status == OutboxStatus.DELIVERED
    assert row.delivered_at is not None
    stored = events(sessions)
    assert [(e.kind, e.provider_id) for e in stored] == [
        ("dlr", f"{message_id}:1:1795316137"),
        ("dlr", f"{message_id}:8:1795316137"),
    ]
    assert all(e.processed_at is not None and e.result for e in stored)
    assert dispatcher.inbound == []  # applied at once, nothing for the workers


async def test_failed_dlr_marks_the_message_failed(
    client: Client, sessions: sessionmaker[Session], vault: PhoneVault
) -> None:
    message_id = add_message(sessions, vault)
    response = await client.post(DLR, data=dlr_params(message_id, "16"))
    assert await response.json() == {"result": "applied failed (kannel 16 smsc_rejected)"}
    assert message(sessions, message_id).status == OutboxStatus.FAILED


async def test_repeated_dlr_is_stored_once(
    client: Client, sessions: sessionmaker[Session], vault: PhoneVault
) -> None:
    message_id = add_message(sessions, vault)
    await client.get(DLR, params=dlr_params(message_id, "1"))
    again = await client.get(DLR, params=dlr_params(message_id, "1"))
    assert again.status == 200
    assert await again.json() == {"result": "duplicate"}
    assert len(events(sessions)) == 1


@pytest.mark.parametrize("ref", ["999999", "99999999999999"])
async def test_dlr_for_unknown_message_is_acknowledged(
    client: Client, sessions: sessionmaker[Session], ref: str
) -> None:
    response = await client.get(DLR, params=dlr_params(ref, "1"))
    assert response.status == 200
    assert await response.json() == {"result": "unknown message"}
    [event] = events(sessions)
    assert (event.result, event.processed_at is not None) == ("unknown message", True)


@pytest.mark.parametrize(
    ("change", "status", "error"),
    [
        ({"token": ""}, 401, "missing_token"),
        ({"token": dlr_token(TOKEN, "2")}, 403, "bad_token"),  # another message's token
        ({"token": TOKEN}, 403, "bad_token"),  # the MO token is not a DLR token
        ({"status": "%d"}, 400, "invalid_field"),
        ({"status": ""}, 400, "missing_field"),
        ({"ref": ""}, 400, "missing_field"),
    ],
)
async def test_bad_dlrs_are_refused_and_change_nothing(
    client: Client,
    sessions: sessionmaker[Session],
    vault: PhoneVault,
    change: dict[str, str],
    status: int,
    error: str,
) -> None:
    message_id = add_message(sessions, vault)
    params = dlr_params(message_id, "1")
    params.update(change)
    response = await client.get(DLR, params=params)
    assert response.status == status
    assert (await response.json())["error"] == error
    assert events(sessions) == []
    assert message(sessions, message_id).status == OutboxStatus.SENT


async def test_database_down_answers_503_so_kannel_retries(
    settings: Settings, vault: PhoneVault, redis: Redis, dispatcher: RecordingDispatcher
) -> None:
    engine = make_engine(f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere")  # nothing listens
    try:
        down = sessionmaker(bind=engine)
        async with app_client(settings, down, vault, redis, dispatcher) as down_client:
            mo = await down_client.get(MO, params=mo_params())
            assert mo.status == 503
            assert (await mo.json())["error"] == "storage_unavailable"
            dlr = await down_client.get(DLR, params=dlr_params(1, "1"))
            assert dlr.status == 503
    finally:
        engine.dispose()
    assert dispatcher.inbound == []
