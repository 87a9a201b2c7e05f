"""Hypothesis against every webhook parser: whatever arrives, each one returns a value or raises
its own refusal (which the webhook answers with a 4xx), never anything else (a 500)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from bot.bodies import MAX_JSON_DEPTH, decode_json, has_unstorable, nesting_exceeds
from bot.channels.brandname.parse import parse_inbound as parse_brandname_mo
from bot.channels.brandname.parse import parse_status as parse_brandname_status
from bot.channels.kannel import parse_delivery_report, parse_inbound
from bot.channels.sms import InboundRequestError
from bot.channels.zalo.events import NotAnEventError
from bot.channels.zalo.types import parse_bot_update, parse_oa_event
from bot.channels.zalo_bot.parse import describe_bot_event
from bot.channels.zalo_oa.parse import describe_oa_event
from bot.channels.zalo_oa.webhooks import _event_seconds
from bot.errors import RefusedError

# Any Unicode, lone surrogates and NUL included.
ANY_TEXT = st.text(st.characters(codec=None, min_codepoint=0), max_size=40)
SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | ANY_TEXT
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
    max_leaves=20,
)
EVENT_KEYS = st.sampled_from(
    ["event_name", "message", "message_id", "msg_id", "sender", "recipient", "follower", "id", "from", "chat",
     "text", "timestamp", "app_id", "ok", "result", "rate", "note", "tracking_id", "feedbacks"]
)  # fmt: skip
BRANDNAME_KEYS = st.sampled_from(
    ["id", "from", "to", "text", "received_at", "message_id", "ref", "status", "error_code", "reported_at"]
)
BRANDNAME_BODIES = (
    st.dictionaries(
        BRANDNAME_KEYS | ANY_TEXT,
        SCALARS | st.sampled_from(["delivered", "rejected", "0912345678", "42", "2026-11-22T09:55:49+07:00"]),
        max_size=8,
    )
    | JSON_VALUES
)
EVENTS = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(EVENT_KEYS | ANY_TEXT, inner, max_size=6),
    max_leaves=25,
)
KANNEL_KEYS = st.sampled_from(["id", "from", "to", "text", "ts", "ref", "msg", "status", "token"]) | ANY_TEXT
KANNEL_PARAMS = st.dictionaries(KANNEL_KEYS, ANY_TEXT, max_size=9)
FAST = settings(max_examples=200, deadline=None)


def _refusal_status(parse: Any, value: Any) -> int | None:
    """None when `parse(value)` returns; the status of its RefusedError (anything else raises)."""
    try:
        parse(value)
    except RefusedError as refused:
        return refused.response.status
    return None


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(item) for item in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(item) for item in value), default=0)
    return 0


@FAST
@given(st.binary(max_size=300))
@example(b"[" * 5000 + b"]" * 5000)
@example(b'{"a": "\\ud800"}')
@example(b'{"a": "\\u0000"}')
@example(b"NaN")
def test_decode_json_returns_or_refuses_with_400(body: bytes) -> None:
    assert _refusal_status(decode_json, body) in (None, 400)


@FAST
@given(JSON_VALUES)
def test_decode_json_accepts_storable_json_and_measures_depth(value: Any) -> None:
    text = json.dumps(value)
    assert nesting_exceeds(text, _depth(value) - 1) == (_depth(value) > 0)
    assert not nesting_exceeds(text, _depth(value))
    unstorable = any(has_unstorable(item) for item in _strings(value))
    if unstorable:
        assert _refusal_status(decode_json, text.encode()) == 400
    else:
        assert decode_json(text.encode())[1] == value
        assert _depth(value) <= MAX_JSON_DEPTH


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [*value.keys(), *(s for item in value.values() for s in _strings(item))]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


@FAST
@given(EVENTS)
def test_zalo_event_descriptions(payload: Any) -> None:
    for describe in (describe_bot_event, describe_oa_event):
        try:
            record = describe(payload)
        except NotAnEventError:
            continue
        assert len(record.kind) <= 32
        assert len(record.provider_id) <= 128
        assert record.sender is None or isinstance(record.sender, str)
        assert record.text is None or isinstance(record.text, str)


@FAST
@given(EVENTS)
def test_zalo_models_validate_or_raise_validation_errors(payload: Any) -> None:
    for parse in (parse_bot_update, parse_oa_event):
        with contextlib.suppress(ValidationError):
            parse(payload)


@FAST
@given(KANNEL_PARAMS)
@example({"ref": "1", "status": "1", "ts": "999999999999"})  # %T past the year 9999
def test_kannel_callbacks_parse_or_refuse(params: dict[str, str]) -> None:
    for parse in (parse_inbound, parse_delivery_report):
        error = None
        try:
            parse(params)
        except InboundRequestError as refused:
            error = refused.error
        assert error in (None, "missing_field", "invalid_field")


@FAST
@given(BRANDNAME_BODIES)
@example({"message_id": "m", "ref": "1", "status": "sent", "reported_at": "0001-01-01T00:00:00+01:00"})
def test_brandname_callbacks_parse_or_refuse(payload: Any) -> None:
    for parse in (parse_brandname_mo, parse_brandname_status):
        error = None
        try:
            parse(payload)
        except InboundRequestError as refused:
            error = refused.error
        assert error in (None, "missing_field", "invalid_field", "unknown_status")


@FAST
@given(st.one_of(st.integers(), ANY_TEXT, st.text("0123456789", min_size=1, max_size=500)))
@example("9" * 400)
def test_oa_timestamps_parse_or_refuse(stamp: int | str) -> None:
    status = _refusal_status(_event_seconds, stamp)
    assert status in (None, 400)
    if status is None:
        assert 0 <= _event_seconds(stamp) < 10**13
