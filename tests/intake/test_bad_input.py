"""Bad input at the intake never yields a 5xx: the request gets a 4xx, or the one bad case a
`rejected` with its field errors while the good cases of the same batch are stored. Regression
tests for what a fuzz run found (issue 10, item 3), then a property test over arbitrary batches."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis import Redis
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from storage.crypto import PhoneVault
from storage.db import session_factory
from storage.models import Case
from tests.intake.conftest import PATH, case, counts, signed_headers, table_rows
from tests.support.app import Client, RecordingDispatcher, app_client

TEXT_FIELDS = (
    "case_id",
    "agency_code",
    "procedure_code",
    "phone",
    "zalo_user_id",
    "procedure_name",
    "agency_name",
)
OUTCOMES = {
    *("scheduled", "not_sampled", "duplicate", "opted_out", "frequency_capped", "staff_number"),
    "rejected",
}


async def post_raw(client: Client, body: bytes) -> tuple[int, dict[str, Any]]:
    response = await client.post(PATH, data=body, headers=signed_headers(body))
    return response.status, await response.json()


def ascii_body(document: object) -> bytes:
    """JSON with \\u escapes, as a sender would write a lone surrogate (UTF-8 cannot carry it)."""
    return json.dumps(document, ensure_ascii=True).encode("ascii")


def good(n: int) -> dict[str, Any]:
    return case(case_id=f"GOOD-{n}", phone=f"091234{n:04d}")


@pytest.mark.parametrize(
    "bad",
    ["\x00", chr(0xD800), chr(0xDFFF), "a\x00b", "\x07"],
    ids=["nul", "high", "low", "inner-nul", "bell"],
)
@pytest.mark.parametrize("field", TEXT_FIELDS)
async def test_unstorable_characters_reject_only_their_case(
    client: Client, sessions: sessionmaker[Session], registry: dict[str, int], field: str, bad: str
) -> None:
    """NUL, other control characters and lone surrogates in any text field: that case is
    rejected on that field, the good cases around it are stored."""
    value = case().get(field, "x") + bad
    bad_case = {**case(case_id="BAD-1", phone="0987654321"), field: value}
    status, data = await post_raw(client, ascii_body({"cases": [good(1), bad_case, good(2)]}))
    assert status == 202
    outcomes = [r["outcome"] for r in data["results"]]
    assert outcomes == ["scheduled", "rejected", "scheduled"]
    rejected = data["results"][1]
    assert [e["field"] for e in rejected["errors"]] == [field]
    assert "control characters" in rejected["errors"][0]["message"] or field == "phone"
    # a case_id that cannot be stored is not echoed back either
    assert rejected["case_id"] == (None if field == "case_id" else "BAD-1")
    with sessions() as session:
        assert set(session.scalars(select(Case.case_id))) == {"GOOD-1", "GOOD-2"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("due_at", "9999-12-31T23:59:59-14:00"),  # past the end of the calendar in UTC (OverflowError)
        ("closed_at", "0001-01-01T00:00:00+14:00"),  # before its start
        ("received_at", "9999-12-31T23:59:59+14:00"),
        ("closed_at", "1970-01-01T00:00:00+00:00"),  # absurd, not an overflow
        ("due_at", "2200-01-01T00:00:00+07:00"),
    ],
)
async def test_times_outside_2000_to_2100_reject_only_their_case(
    client: Client, sessions: sessionmaker[Session], registry: dict[str, int], field: str, value: str
) -> None:
    status, data = await post_raw(
        client, ascii_body({"cases": [{**case(case_id="BAD"), field: value}, good(1)]})
    )
    assert status == 202
    assert [r["outcome"] for r in data["results"]] == ["rejected", "scheduled"]
    assert data["results"][0]["errors"] == [
        {"field": field, "message": "must lie between 2000 and 2100 (UTC)"}
    ]
    assert counts(sessions) == {"cases": 1, "surveys": 1, "timers": 1}


@pytest.mark.parametrize(
    "overrides",
    [
        {"phone": 1e300},
        {"phone": 10**400},
        {"phone": "０９１２３４５６７８"},  # full-width digits
        {"phone": "0912345678" * 10},
        {"case_id": 12345},
        {"case_id": "x" * 65},
        {"case_id": ["H01"]},
        {"closed_at": 1763630000},
        {"closed_at": {"$date": "2026-11-20"}},
        {"apology_sent": "maybe"},
        {"language": "fr"},
        {"channel": "fax"},
        {"procedure_name": "đ" * 513},
        {"zalo_user_id": True},
    ],
)
async def test_absurd_values_reject_only_their_case(
    client: Client, sessions: sessionmaker[Session], registry: dict[str, int], overrides: dict[str, Any]
) -> None:
    status, data = await post_raw(
        client, json.dumps({"cases": [good(1), {**case(case_id="BAD"), **overrides}]}).encode()
    )
    assert status == 202
    assert [r["outcome"] for r in data["results"]] == ["scheduled", "rejected"]
    assert [e["field"] for e in data["results"][1]["errors"]] == list(overrides)
    assert counts(sessions) == {"cases": 1, "surveys": 1, "timers": 1}


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 10_000 + b"]" * 10_000,
        b'{"cases": [' + b'{"a":' * 10_000 + b"1" + b"}" * 10_000 + b"]}",
        json.dumps(
            {
                "cases": [
                    {**case(), "extra": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}
                ]
            }
        ).encode(),
    ],
    ids=["array-10000-deep", "object-10000-deep-in-a-batch", "34-deep-in-an-unknown-field"],
)
async def test_deeply_nested_json_is_refused_with_400(
    client: Client, sessions: sessionmaker[Session], registry: dict[str, int], body: bytes
) -> None:
    status, data = await post_raw(client, body)
    assert (status, data["error"]) == (400, "too_deep")
    assert table_rows(sessions) == 0


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            json.dumps(case(procedure_name="Cafe")).encode().replace(b"Cafe", b"Caf\xe9"),
            "invalid_encoding",
        ),
        (json.dumps(case()).encode("utf-16"), "invalid_encoding"),
        (b"\xff\xfe" + json.dumps(case()).encode("utf-16-le"), "invalid_encoding"),
        (b'{"case_id": "\xc3\x28"}', "invalid_encoding"),  # invalid UTF-8 continuation
        (b"\xef\xbb\xbf" + json.dumps(case()).encode(), "malformed_json"),  # UTF-8 byte order mark
        (b'{"cases": [' + b"1" * 5000 + b"]}", "malformed_json"),  # an integer of 5,000 digits
        (b'{"cases": [NaN]}', "malformed_json"),
    ],
    ids=["latin-1", "utf-16", "utf-16-bom", "bad-utf-8", "utf-8-bom", "huge-integer", "nan"],
)
async def test_wrong_encodings_are_refused_with_400(
    client: Client, sessions: sessionmaker[Session], registry: dict[str, int], body: bytes, error: str
) -> None:
    status, data = await post_raw(client, body)
    assert (status, data["error"]) == (400, error)
    assert table_rows(sessions) == 0


async def test_an_unreachable_database_is_503_and_only_that(
    settings: Settings, vault: PhoneVault, redis: Redis, registry: dict[str, int]
) -> None:
    """503 means "could not store, retry": the database is down, the request was fine."""
    down = session_factory("postgresql://sipas@127.0.0.1:9/nowhere?connect_timeout=2")
    async with app_client(settings, down, vault, redis, RecordingDispatcher()) as client:
        status, data = await post_raw(client, json.dumps({"cases": [good(1)]}).encode())
    assert (status, data["error"]) == (503, "storage_unavailable")


# -- arbitrary batches -------------------------------------------------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
_times = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda t: t.isoformat()),
    st.sampled_from(["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "2026-11-20T16:30:00"]),
    _json,
)
_field_values: dict[str, st.SearchStrategy[Any]] = {
    "case_id": st.one_of(st.text(min_size=1, max_size=70), _json),
    "agency_code": st.one_of(st.sampled_from(["HN-TX-HD", "HN-TX-KM", "HN", "XX"]), _json),
    "procedure_code": st.one_of(st.just("1.001612"), st.text(max_size=70), _json),
    "phone": st.one_of(
        st.sampled_from(["0912345678", "+84 912 345 678", "0168 555 0123", "024 3825 1234"]),
        st.text(alphabet="0123456789 +-().", max_size=20),
        st.text(max_size=20),
        _json,
    ),
    "zalo_user_id": st.one_of(st.text(max_size=140), _json),
    "closed_at": _times,
    "received_at": _times,
    "due_at": _times,
    "apology_sent": _json,
    "channel": st.one_of(st.sampled_from(["sms", "zalo", ""]), _json),
    "language": st.one_of(st.sampled_from(["vi", "en"]), _json),
    "procedure_name": st.one_of(st.text(max_size=600), _json),
}
_cases = st.one_of(
    st.fixed_dictionaries({}, optional=_field_values),
    st.builds(lambda extra: {**case(), **extra}, st.fixed_dictionaries({}, optional=_field_values)),
    _json,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(_cases, min_size=1, max_size=8), wrap=st.booleans())
async def test_no_batch_ever_gets_a_server_error(
    client: Client, registry: dict[str, int], batch: list[Any], wrap: bool
) -> None:
    """Any batch (valid, broken, or not a case at all) gets a 4xx or a 202 with one known outcome
    per case; never a 5xx. Bodies are written with \\u escapes, so lone surrogates reach the app."""
    document: Any = {"cases": batch} if wrap or len(batch) > 1 else batch[0]
    status, data = await post_raw(client, ascii_body(document))
    assert status < 500, data
    if status == 202:
        cases = batch if isinstance(document, dict) and "cases" in document else [document]
        assert len(data["results"]) == len(cases)
        assert {r["outcome"] for r in data["results"]} <= OUTCOMES
