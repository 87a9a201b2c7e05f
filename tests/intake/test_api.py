"""POST /api/v1/cases/closed through the real aiohttp app, database and Redis.

Every refused request is checked for its JSON error *and* for having stored nothing at all.
"""

from __future__ import annotations

import io
import time
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.intake import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from config.settings import Settings
from storage.crypto import PhoneVault
from storage.models import Case, Survey
from tests.conftest import ONESTOP_SECRET
from tests.intake.conftest import PATH, body_of, case, counts, signed_headers, table_rows
from tests.support.app import RecordingDispatcher

Client = TestClient[Any, Any]
NOTHING = {"cases": 0, "surveys": 0, "timers": 0}


async def post(client: Client, document: object, **sign_options: Any) -> tuple[int, dict[str, Any]]:
    body = document if isinstance(document, bytes) else body_of(document)
    response = await client.post(PATH, data=body, headers=signed_headers(body, **sign_options))
    return response.status, await response.json()


async def test_single_case_is_scheduled(
    client: Client,
    sessions: sessionmaker[Session],
    vault: PhoneVault,
    registry: dict[str, int],
    dispatcher: RecordingDispatcher,
) -> None:
    status, data = await post(client, case())
    assert status == 202
    [result] = data["results"]
    assert result["case_id"] == "H01.40-261120-0001"
    assert result["outcome"] == "scheduled"
    assert isinstance(result["survey_id"], int)
    assert "errors" not in result
    assert counts(sessions) == {"cases": 1, "surveys": 1, "timers": 1}
    with sessions() as session:
        survey = session.get_one(Survey, result["survey_id"])
        assert survey.phone_hash == vault.lookup_hash("+84912345678")
    assert dispatcher.inbound == []
    assert dispatcher.scheduled == 1  # the timer drain is woken: a first message due now goes at once


async def test_a_request_that_opens_no_survey_wakes_nothing(
    client: Client, registry: dict[str, int], dispatcher: RecordingDispatcher
) -> None:
    document = case()
    await post(client, document)
    status, data = await post(client, document)  # a duplicate: nothing new to open
    assert (status, data["results"][0]["outcome"]) == (202, "duplicate")
    assert dispatcher.scheduled == 1


async def test_cases_are_accepted_when_the_wake_up_fails(
    client: Client, sessions: sessionmaker[Session], registry: dict[str, int], dispatcher: RecordingDispatcher
) -> None:
    """Redis down after the commit: the cases are stored and acknowledged; the cron sweep fires
    their timers when due (the wake-up only saves the wait for it)."""
    dispatcher.fail = True
    status, data = await post(client, case())
    assert (status, data["results"][0]["outcome"]) == (202, "scheduled")
    assert counts(sessions) == {"cases": 1, "surveys": 1, "timers": 1}


async def test_batch_with_good_and_bad_cases(
    client: Client, sessions: sessionmaker[Session], registry: dict[str, int]
) -> None:
    batch = {
        "cases": [
            case(case_id="A"),
            case(case_id="B", phone="+1 202 555 0100"),
            case(case_id="C", agency_code="NOPE"),
            case(case_id="D", phone="0987654321", closed_at="2026-11-20T16:30:00"),
            [1, 2],
            case(case_id="E", phone="0987654321", agency_code="HN-TX-KM"),
        ]
    }
    status, data = await post(client, batch)
    assert status == 202
    results = data["results"]
    assert [(r["case_id"], r["outcome"]) for r in results] == [
        ("A", "scheduled"),
        ("B", "rejected"),
        ("C", "rejected"),
        ("D", "rejected"),
        (None, "rejected"),
        ("E", "scheduled"),
    ]
    assert results[1]["errors"] == [
        {"field": "phone", "message": "only Vietnamese (+84) numbers can be surveyed"}
    ]
    assert results[2]["errors"] == [{"field": "agency_code", "message": "is not in the agency registry"}]
    assert results[3]["errors"][0]["field"] == "closed_at"
    assert results[4]["errors"] == [{"field": "", "message": "a case must be a JSON object"}]
    assert all(r["survey_id"] is None for r in results[1:5])
    with sessions() as session:
        assert set(session.scalars(select(Case.case_id))) == {"A", "E"}
    assert counts(sessions) == {"cases": 2, "surveys": 2, "timers": 2}


async def test_same_request_twice_makes_one_survey(
    client: Client, sessions: sessionmaker[Session], registry: dict[str, int]
) -> None:
    document = case()
    _, first = await post(client, document)
    status, second = await post(client, document)
    assert status == 202
    assert second["results"] == [
        {
            "case_id": document["case_id"],
            "outcome": "duplicate",
            "survey_id": first["results"][0]["survey_id"],
        }
    ]
    assert counts(sessions) == {"cases": 1, "surveys": 1, "timers": 1}


async def test_duplicates_inside_one_batch(
    client: Client, sessions: sessionmaker[Session], registry: dict[str, int]
) -> None:
    status, data = await post(client, {"cases": [case(), case()]})
    assert status == 202
    assert [r["outcome"] for r in data["results"]] == ["scheduled", "duplicate"]
    assert counts(sessions) == {"cases": 1, "surveys": 1, "timers": 1}


async def test_unknown_agency_and_bad_phone_are_rejected_with_field_errors(
    client: Client, sessions: sessionmaker[Session], registry: dict[str, int]
) -> None:
    status, data = await post(client, case(agency_code="HN-XX", phone="12345"))
    assert status == 202
    [result] = data["results"]
    assert result["outcome"] == "rejected"
    # field validation comes first: the phone is reported; the agency is checked once the case is valid
    assert [e["field"] for e in result["errors"]] == ["phone"]
    _, data = await post(client, case(agency_code="HN-XX"))
    assert data["results"][0]["errors"] == [
        {"field": "agency_code", "message": "is not in the agency registry"}
    ]
    assert counts(sessions) == NOTHING


async def test_unicode_in_names_round_trips(client: Client, registry: dict[str, int]) -> None:
    status, data = await post(
        client, case(procedure_name="Đăng ký khai sinh", agency_name="UBND phường Hạ Đình")
    )
    assert (status, data["results"][0]["outcome"]) == (202, "scheduled")


# --- authentication -----------------------------------------------------------------------------


async def _refused(
    client: Client, sessions: sessionmaker[Session], body: bytes, headers: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    # large bodies go as a stream (aiohttp warns about big raw bytes payloads)
    payload = io.BytesIO(body) if len(body) > 1024 * 1024 else body
    response = await client.post(PATH, data=payload, headers=headers)
    data = await response.json()
    assert set(data) >= {"error", "message"}
    assert table_rows(sessions) == 0
    return response.status, data


async def test_unsigned_request_is_refused(
    client: Client, sessions: sessionmaker[Session], registry: dict[str, int]
) -> None:
    body = body_of(case())
    status, data = await _refused(client, sessions, body, {"Content-Type": "application/json"})
    assert (status, data["error"]) == (401, "missing_signature")
    only_timestamp = {TIMESTAMP_HEADER: str(int(time.time()))}
    status, data = await _refused(client, sessions, body, only_timestamp)
    assert (status, data["error"]) == (401, "missing_signature")


@pytest.mark.parametrize(
    "signature",
    [
        "v1=" + "0" * 64,
        "deadbeef",
        "v1=",
        "v2=abc",
        "v1=ZZZ",
        "v1=é",
    ],
)
async def test_wrong_signature_is_refused(
    client: Client, sessions: sessionmaker[Session], registry: dict[str, int], signature: str
) -> None:
    body = body_of(case())
    headers = {TIMESTAMP_HEADER: str(int(time.time())), SIGNATURE_HEADER: signature}
    status, data = await _refused(client, sessions, body, headers)
    assert (status, data["error"]) == (401, "invalid_signature")


async def test_signature_by_another_secret_or_over_another_body_is_refused(
    client: Client, sessions: sessionmaker[Session], registry: dict[str, int]
) -> None:
    body = body_of(case())
    status, data = await _refused(client, sessions, body, signed_headers(body, secret="someone-else"))
    assert (status, data["error"]) == (401, "invalid_signature")
    tampered = body_of(case(phone="0987654321"))
    status, data = await _refused(client, sessions, tampered, signed_headers(body))
    assert (status, data["error"]) == (401, "invalid_signature")
    # the timestamp is part of what is signed
    now = int(time.time())
    headers = {TIMESTAMP_HEADER: str(now), SIGNATURE_HEADER: sign(ONESTOP_SECRET, now - 1, body)}
    status, data = await _refused(client, sessions, body, headers)
    assert (status, data["error"]) == (401, "invalid_signature")


@pytest.mark.parametrize("offset", [-301, 301, -86400, 10**9])
async def test_stale_or_future_timestamp_is_refused(
    client: Client, sessions: sessionmaker[Session], registry: dict[str, int], offset: int
) -> None:
    body = body_of(case())
    status, data = await _refused(
        client, sessions, body, signed_headers(body, timestamp=int(time.time()) + offset)
    )
    assert (status, data["error"]) == (401, "stale_timestamp")


@pytest.mark.parametrize("timestamp", ["", "abc", "1.5e9", "-5", "12 34", "9" * 40])
async def test_garbled_timestamp_is_refused(
    client: Client, sessions: sessionmaker[Session], registry: dict[str, int], timestamp: str
) -> None:
    body = body_of(case())
    headers = {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: "v1=" + "0" * 64}
    status, data = await _refused(client, sessions, body, headers)
    assert (status, data["error"]) == (401, "invalid_timestamp")


async def test_timestamp_inside_the_window_is_accepted(
    client: Client, sessions: sessionmaker[Session], registry: dict[str, int]
) -> None:
    status, _ = await post(client, case(case_id="past"), timestamp=int(time.time()) - 290)
    assert status == 202
    status, _ = await post(
        client, case(case_id="ahead", phone="0987654321"), timestamp=int(time.time()) + 290
    )
    assert status == 202
    assert counts(sessions)["cases"] == 2


async def test_a_rotated_secret_may_send_two_signatures(
    client: Client, sessions: sessionmaker[Session], registry: dict[str, int]
) -> None:
    body = body_of(case())
    now = int(time.time())
    headers = {
        TIMESTAMP_HEADER: str(now),
        SIGNATURE_HEADER: f"{sign('old-secret', now, body)}, {sign(ONESTOP_SECRET, now, body)}",
    }
    response = await client.post(PATH, data=body, headers=headers)
    assert response.status == 202
    assert counts(sessions)["cases"] == 1


# --- body -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b'{"case_id": "A",', 400, "malformed_json"),
        (b"", 400, "malformed_json"),
        (b'{"closed_at": NaN}', 400, "malformed_json"),
        (b'{"case_id": "H\xff\xfe"}', 400, "invalid_encoding"),
        ('{"case_id": "Hạ Đình"}'.encode("utf-16"), 400, "invalid_encoding"),
        (b"[]", 400, "invalid_body"),
        (b'"case"', 400, "invalid_body"),
        (b'{"cases": {"case_id": "A"}}', 400, "invalid_body"),
        (b'{"cases": []}', 400, "empty_batch"),
    ],
)
async def test_bad_bodies_are_refused(
    client: Client,
    sessions: sessionmaker[Session],
    registry: dict[str, int],
    body: bytes,
    status: int,
    error: str,
) -> None:
    got_status, data = await _refused(client, sessions, body, signed_headers(body))
    assert (got_status, data["error"]) == (status, error)


async def test_1001_cases_are_too_many(
    client: Client, sessions: sessionmaker[Session], registry: dict[str, int]
) -> None:
    body = body_of({"cases": [case(case_id=f"C{i}") for i in range(1001)]})
    status, data = await _refused(client, sessions, body, signed_headers(body))
    assert (status, data["error"]) == (413, "batch_too_large")
    assert "1000" in data["message"]


async def test_1000_cases_are_accepted(
    client: Client, sessions: sessionmaker[Session], registry: dict[str, int]
) -> None:
    cases = [case(case_id=f"C{i:04d}", phone=f"0912{i:06d}") for i in range(1000)]
    status, data = await post(client, {"cases": cases})
    assert status == 202
    assert len(data["results"]) == 1000
    assert {r["outcome"] for r in data["results"]} == {"scheduled"}
    assert counts(sessions) == {"cases": 1000, "surveys": 1000, "timers": 1000}


async def test_2_mb_body_is_refused_with_413(
    client: Client, sessions: sessionmaker[Session], registry: dict[str, int]
) -> None:
    padding = "x" * (2 * 1024 * 1024)
    body = body_of({"cases": [case(procedure_name=padding)]})
    status, data = await _refused(client, sessions, body, signed_headers(body))
    assert (status, data["error"]) == (413, "payload_too_large")


async def test_no_secret_configured_refuses_everything(
    client: Client, sessions: sessionmaker[Session], settings: Settings, registry: dict[str, int]
) -> None:
    """An empty key would make every signature computable by anyone."""
    settings.ONESTOP_WEBHOOK_SECRET = ""  # the app's settings object
    body = body_of(case())
    status, data = await _refused(client, sessions, body, signed_headers(body, secret=""))
    assert (status, data["error"]) == (503, "not_configured")


async def test_wrong_method_is_a_json_error(client: Client) -> None:
    response = await client.get(PATH)
    assert response.status == 405
    assert (await response.json())["error"] == "method_not_allowed"
