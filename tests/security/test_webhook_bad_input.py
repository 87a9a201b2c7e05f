"""Bad input at the webhooks gets a clear 4xx and stores nothing: never a 500, and never a 503
(which only means "could not store, retry" and would make the provider retry forever)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis import Redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.bodies import MAX_JSON_DEPTH, decode_json, nesting_exceeds
from bot.errors import RefusedError
from config.settings import Settings
from storage.crypto import PhoneVault
from storage.models import InboundEvent
from tests.security.webhook_client import (
    BOT,
    BOT_SECRET,
    DLR,
    MO,
    MO_TOKEN,
    OA,
    bot_event,
    configured,
    dlr_token_vector,
    dumps,
    now_ms,
    oa_event,
    signed_oa,
)
from tests.support.app import Client, RecordingDispatcher, app_client

DEEP = "[" * 10_000 + "]" * 10_000


@pytest.fixture
async def web(
    settings: Settings,
    sessions: sessionmaker[Session],
    vault: PhoneVault,
    redis: Redis,
    dispatcher: RecordingDispatcher,
) -> AsyncIterator[Client]:
    async with app_client(configured(settings), sessions, vault, redis, dispatcher) as client:
        yield client


def stored(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count()).select_from(InboundEvent)) or 0)


async def _post(web: Client, path: str, body: str | bytes, headers: dict[str, str]) -> tuple[int, str]:
    data = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    response = await web.post(path, data=data, headers=headers)
    answer = await response.json()
    return response.status, answer.get("error", answer.get("status"))


# --- JSON nested 10,000 deep ------------------------------------------------------------------


@pytest.mark.parametrize("signed", [False, True])
async def test_deep_json_on_the_oa_webhook_is_400(
    web: Client, sessions: sessionmaker[Session], signed: bool
) -> None:
    stamp = str(now_ms())
    body = '{"app_id": "x", "timestamp": "' + stamp + '", "a": ' + DEEP + "}"
    headers = signed_oa(body, stamp) if signed else {"X-ZEvent-Signature": "mac=00"}
    assert await _post(web, OA, body, headers) == (400, "too_deep")
    assert stored(sessions) == 0


async def test_deep_json_on_the_bot_webhook_is_400(web: Client, sessions: sessionmaker[Session]) -> None:
    assert await _post(web, BOT, DEEP, {"X-Bot-Api-Secret-Token": BOT_SECRET}) == (400, "too_deep")
    assert stored(sessions) == 0


def test_depth_is_counted_outside_strings_only() -> None:
    assert not nesting_exceeds('{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}', 3)
    assert not nesting_exceeds('{"a": "\\"[[[[[[[[["}', 1)
    assert nesting_exceeds("[[[[]]]]", 3)
    assert decode_json(("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH).encode())[1] is not None
    with pytest.raises(RefusedError):
        decode_json(("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)).encode())
    for constant in (b"NaN", b"[Infinity]", b"-Infinity"):
        with pytest.raises(RefusedError):
            decode_json(constant)


# --- NUL and lone surrogates in Zalo ids and names ---------------------------------------------


@pytest.mark.parametrize("field", ["msg_id", "event_name", "sender_id"])
@pytest.mark.parametrize("bad", ["\\u0000", "\\ud800", "a\\udfffb"])
async def test_nul_or_lone_surrogate_in_a_signed_oa_event_is_400(
    web: Client, sessions: sessionmaker[Session], field: str, bad: str
) -> None:
    event = oa_event()
    placeholder = "PLACEHOLDER"
    if field == "msg_id":
        event["message"]["msg_id"] = placeholder
    elif field == "event_name":
        event["event_name"] = placeholder
    else:
        event["sender"]["id"] = placeholder
    raw = dumps(event).replace(placeholder, bad)  # JSON escapes: the raw body is plain ASCII
    assert await _post(web, OA, raw, signed_oa(raw, event["timestamp"])) == (400, "bad_characters")
    assert stored(sessions) == 0


@pytest.mark.parametrize("bad", ["\\u0000", "\\ud83d", "x\\udc00"])
@pytest.mark.parametrize("field", ["message_id", "event_name", "text"])
async def test_nul_or_lone_surrogate_in_a_bot_event_is_400(
    web: Client, sessions: sessionmaker[Session], bad: str, field: str
) -> None:
    raw = dumps({"ok": True, "result": bot_event()})
    target = {"message_id": "bot-msg-1", "event_name": "message.text.received", "text": '"5"'}[field]
    raw = raw.replace(target, target.replace("5", bad) if field == "text" else bad, 1)
    assert await _post(web, BOT, raw, {"X-Bot-Api-Secret-Token": BOT_SECRET}) == (400, "bad_characters")
    assert stored(sessions) == 0


# --- OA timestamps -----------------------------------------------------------------------------


@pytest.mark.parametrize("stamp", ["9" * 400, "1" * 16, "-5", "1e12", "１２３", " "])
async def test_an_absurd_signed_oa_timestamp_is_400(
    web: Client, sessions: sessionmaker[Session], stamp: str
) -> None:
    event = oa_event(timestamp=stamp)
    raw = dumps(event)
    assert await _post(web, OA, raw, signed_oa(raw, stamp)) == (400, "not_an_event")
    assert stored(sessions) == 0


async def test_an_absurd_unsigned_oa_timestamp_is_401(web: Client, sessions: sessionmaker[Session]) -> None:
    raw = dumps(oa_event(timestamp="9" * 400))
    assert await _post(web, OA, raw, {"X-ZEvent-Signature": "mac=" + "0" * 64}) == (401, "bad_signature")
    assert stored(sessions) == 0


# --- Kannel callbacks ----------------------------------------------------------------------------


def _query(**params: str) -> str:
    """Percent-encoded by hand so that raw bytes (%00, an encoded surrogate) reach the app."""
    return "&".join(f"{key}={value}" for key, value in params.items())


MO_FIELDS = {
    "token": MO_TOKEN,
    "from": "84912345678",
    "to": "8040",
    "text": "5",
    "id": "mo-1",
    "ts": "2026-11-22+02:55:49",
}


@pytest.mark.parametrize("field", ["id", "ts", "from", "to"])
@pytest.mark.parametrize("bad", ["%00", "a%00b"])
async def test_nul_in_kannel_mo_fields_is_400(
    web: Client, sessions: sessionmaker[Session], field: str, bad: str
) -> None:
    response = await web.get(f"{MO}?{_query(**{**MO_FIELDS, field: bad})}")
    assert response.status == 400
    assert (await response.json())["error"] == "bad_characters"
    assert stored(sessions) == 0


@pytest.mark.parametrize("field", ["id", "ts", "from", "text"])
async def test_an_encoded_lone_surrogate_in_kannel_mo_fields_is_400(
    web: Client, sessions: sessionmaker[Session], field: str
) -> None:
    response = await web.get(f"{MO}?{_query(**{**MO_FIELDS, field: '%ED%A0%80'})}")
    assert response.status == 400
    assert (await response.json())["error"] == "bad_encoding"
    assert stored(sessions) == 0


async def test_nul_in_the_sms_text_is_dropped_and_the_reply_stored(
    web: Client, sessions: sessionmaker[Session], vault: PhoneVault
) -> None:
    response = await web.get(f"{MO}?{_query(**{**MO_FIELDS, 'text': '5%00'})}")
    assert response.status == 200
    assert stored(sessions) == 1


@pytest.mark.parametrize("field", ["ts", "msg"])
async def test_nul_in_a_dlr_is_400(web: Client, sessions: sessionmaker[Session], field: str) -> None:
    params = {
        "ref": "7",
        "msg": "abc",
        "token": dlr_token_vector(MO_TOKEN, "7"),
        "status": "1",
        "ts": "1795316137",
    }
    params[field] = "%00"
    response = await web.get(f"{DLR}?{_query(**params)}")
    assert response.status == 400
    assert stored(sessions) == 0


# --- Zalo after an outage: late but correctly signed events are stored once --------------------


@pytest.mark.parametrize("minutes_late", [11, 65])
async def test_a_late_signed_oa_event_is_stored_once(
    web: Client, sessions: sessionmaker[Session], dispatcher: RecordingDispatcher, minutes_late: int
) -> None:
    event = oa_event(msg_id=f"late-{minutes_late}", timestamp=now_ms() - minutes_late * 60_000)
    raw = dumps(event)
    assert await _post(web, OA, raw, signed_oa(raw, event["timestamp"])) == (200, "stored")
    assert await _post(web, OA, raw, signed_oa(raw, event["timestamp"])) == (200, "duplicate")
    assert stored(sessions) == 1
    assert len(dispatcher.inbound) == 1


@pytest.mark.parametrize(
    ("shift_ms", "error"), [(-25 * 3600_000, "stale_event"), (11 * 60_000, "future_event")]
)
async def test_an_oa_event_a_day_old_or_from_the_future_is_403(
    web: Client, sessions: sessionmaker[Session], shift_ms: int, error: str
) -> None:
    event = oa_event(timestamp=now_ms() + shift_ms)
    raw = dumps(event)
    assert await _post(web, OA, raw, signed_oa(raw, event["timestamp"])) == (403, error)
    assert stored(sessions) == 0


@pytest.mark.parametrize(("path", "header"), [(BOT, b"X-Bot-Api-Secret-Token"), (OA, b"X-ZEvent-Signature")])
async def test_undecodable_header_bytes_are_refused_not_a_500(
    web: Client, sessions: sessionmaker[Session], path: str, header: bytes
) -> None:
    """Raw bytes no client library would send (0xff in a header value), over a plain socket."""
    assert web.server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", web.server.port)
    body = dumps(bot_event()).encode()
    writer.write(
        b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + header + b": \xff\xfe" + BOT_SECRET.encode() + b"\r\nContent-Length: " + str(len(body)).encode()
        + b"\r\nConnection: close\r\n\r\n" + body
    )  # fmt: skip
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    await writer.wait_closed()
    assert status_line.split()[1] in (b"400", b"401")
    assert stored(sessions) == 0
