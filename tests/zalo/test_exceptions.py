"""The Zalo envelopes become typed exceptions that say what to do next."""

from __future__ import annotations

import pytest

from bot.channels.zalo.exceptions import (
    ZaloError,
    ZaloPermanentError,
    ZaloRateLimited,
    ZaloServerError,
    ZaloTokenInvalid,
    ZaloUnreachable,
    raise_for_bot_envelope,
    raise_for_oa_envelope,
)
from tests.zalo.conftest import load_fixture


def test_bot_success_returns_result() -> None:
    result = raise_for_bot_envelope(200, load_fixture("bot_api/get_me.json"), method="getMe")
    assert result["id"] == "1234567890"


@pytest.mark.parametrize(
    ("fixture", "status", "expected"),
    [
        ("bot_api/error_401.json", 401, ZaloTokenInvalid),
        ("bot_api/error_403.json", 403, ZaloUnreachable),
        ("bot_api/error_408.json", 408, ZaloServerError),
        ("bot_api/error_429.json", 429, ZaloRateLimited),
        ("bot_api/error_400.json", 400, ZaloPermanentError),
    ],
)
def test_bot_errors(fixture: str, status: int, expected: type[ZaloError]) -> None:
    with pytest.raises(expected) as caught:
        raise_for_bot_envelope(status, load_fixture(fixture), method="sendMessage")
    assert caught.value.code == status
    assert caught.value.method == "sendMessage"
    assert "sendMessage" in str(caught.value)


def test_bot_error_code_in_body_wins_over_a_200() -> None:
    with pytest.raises(ZaloTokenInvalid):
        raise_for_bot_envelope(200, {"ok": False, "error_code": 401, "description": "Unauthorized"})


def test_bot_rate_limit_reads_retry_after() -> None:
    with pytest.raises(ZaloRateLimited) as caught:
        raise_for_bot_envelope(429, load_fixture("bot_api/error_429.json"), headers={"Retry-After": "7"})
    assert caught.value.retry_after == 7.0
    assert caught.value.retryable


@pytest.mark.parametrize(("status", "body"), [(502, None), (200, "<html>"), (503, {"ok": False})])
def test_bot_server_failures_are_retryable(status: int, body: object) -> None:
    with pytest.raises(ZaloServerError) as caught:
        raise_for_bot_envelope(status, body)
    assert caught.value.retryable


def test_oa_success_returns_data() -> None:
    assert raise_for_oa_envelope(200, load_fixture("oa_api/cs_success.json"))["message_id"]


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("oa_api/cs_error_-216.json", ZaloTokenInvalid),
        ("zns/send_error_-124.json", ZaloTokenInvalid),
        ("oa_api/cs_error_-32.json", ZaloRateLimited),
        ("oa_api/cs_error_-213.json", ZaloUnreachable),
        ("oa_api/cs_error_-230.json", ZaloUnreachable),
        ("zns/send_error_-108.json", ZaloUnreachable),
        ("zns/send_error_-118.json", ZaloUnreachable),
        ("zns/send_error_-114.json", ZaloUnreachable),
        ("zns/send_error_-115.json", ZaloPermanentError),
    ],
)
def test_oa_and_zns_errors_come_as_http_200(fixture: str, expected: type[ZaloError]) -> None:
    body = load_fixture(fixture)
    with pytest.raises(expected) as caught:
        raise_for_oa_envelope(200, body, method="/message/template")
    assert caught.value.code == body["error"]
    assert caught.value.description == body["message"]


@pytest.mark.parametrize("code", [-220, -124, -216])
def test_every_token_code_means_refresh(code: int) -> None:
    with pytest.raises(ZaloTokenInvalid):
        raise_for_oa_envelope(200, {"error": code, "message": "token"})


@pytest.mark.parametrize("code", [-108, -118, -114, -119, -139, -141, -213, -230])
def test_every_unreachable_code_means_fall_back(code: int) -> None:
    with pytest.raises(ZaloUnreachable) as caught:
        raise_for_oa_envelope(200, {"error": code, "message": "cannot reach"})
    assert not caught.value.retryable


@pytest.mark.parametrize(
    ("status", "body"), [(500, {"error": -1}), (200, None), (200, {"data": {}}), (504, "")]
)
def test_oa_unreadable_or_5xx_is_a_server_error(status: int, body: object) -> None:
    with pytest.raises(ZaloServerError):
        raise_for_oa_envelope(status, body)


def test_oa_http_401_and_429() -> None:
    with pytest.raises(ZaloTokenInvalid):
        raise_for_oa_envelope(401, "Unauthorized")
    with pytest.raises(ZaloRateLimited):
        raise_for_oa_envelope(429, None)
