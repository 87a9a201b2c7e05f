"""Case objects checked against the contract: every problem reported per field, in plain words."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from flows.intake import CaseValidationError, ValidCase, derive_on_time, validate_case
from storage.models import OnTime

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
HANOI = ZoneInfo("Asia/Ho_Chi_Minh")
ICT = timezone(timedelta(hours=7))


def good(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "case_id": "H01.40-261120-0001",
        "agency_code": "HN-TX-HD",
        "procedure_code": "1.001612",
        "phone": "+84 912 345 678",
        "closed_at": "2026-11-20T16:30:00+07:00",
    }
    data.update(overrides)
    return data


def errors_of(raw: object) -> dict[str, str]:
    with pytest.raises(CaseValidationError) as caught:
        validate_case(raw, NOW)
    return {error.field: error.message for error in caught.value.errors}


def test_a_minimal_case_is_valid_and_normalised() -> None:
    valid = validate_case(good(), NOW)
    assert isinstance(valid, ValidCase)
    assert valid.phone == "+84912345678"
    assert valid.data.closed_at == datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    assert valid.data.language == "vi"
    assert valid.data.apology_sent is False
    assert valid.data.channel is None


def test_every_field_of_the_contract_is_read() -> None:
    valid = validate_case(
        good(
            zalo_user_id="4572914123456789012",
            received_at="2026-11-17T08:00:00+07:00",
            due_at="2026-11-21T17:00:00+07:00",
            apology_sent=True,
            channel="zalo",
            language="en",
            agency_name="UBND phường Hạ Đình",
            procedure_name="Chứng thực bản sao từ bản chính",
        ),
        NOW,
    )
    data = valid.data
    assert data.zalo_user_id == "4572914123456789012"
    assert data.received_at == datetime(2026, 11, 17, 1, 0, tzinfo=UTC)
    assert data.due_at == datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
    assert (data.apology_sent, data.channel, data.language) == (True, "zalo", "en")
    assert data.procedure_name == "Chứng thực bản sao từ bản chính"


def test_unknown_fields_are_ignored() -> None:
    valid = validate_case(good(citizen_name="Nguyễn Văn A", extra={"x": 1}), NOW)
    assert not hasattr(valid.data, "citizen_name")


def test_required_fields_are_named() -> None:
    assert errors_of({}) == {
        "case_id": "is required",
        "agency_code": "is required",
        "procedure_code": "is required",
        "closed_at": "is required",
    }


def test_phone_is_required_unless_a_zalo_user_is_given() -> None:
    assert errors_of(good(phone=None)) == {"phone": "is required unless zalo_user_id is given"}
    valid = validate_case(good(phone=None, zalo_user_id="4572914123456789012"), NOW)
    assert valid.phone is None


def test_empty_optional_fields_mean_absent_but_empty_required_ones_are_errors() -> None:
    valid = validate_case(good(due_at="", channel="", zalo_user_id=None, language=None), NOW)
    assert valid.data.due_at is None
    assert valid.data.language == "vi"
    assert errors_of(good(case_id="  ")) == {"case_id": "must not be empty"}


def test_case_id_is_at_most_64_characters_and_a_string() -> None:
    assert validate_case(good(case_id="x" * 64), NOW).case_id == "x" * 64
    assert errors_of(good(case_id="x" * 65)) == {"case_id": "must be at most 64 characters"}
    assert errors_of(good(case_id=12345)) == {"case_id": "must be a string"}


def test_rejection_echoes_a_usable_case_id() -> None:
    with pytest.raises(CaseValidationError) as caught:
        validate_case(good(phone="abc"), NOW)
    assert caught.value.case_id == "H01.40-261120-0001"
    with pytest.raises(CaseValidationError) as caught:
        validate_case(good(case_id=7), NOW)
    assert caught.value.case_id is None


@pytest.mark.parametrize(
    "value",
    ["2026-11-20T16:30:00", "2026-11-20", "20/11/2026 16:30", "yesterday", 1763630000, None],
)
def test_closed_at_must_be_iso_8601_with_an_offset(value: object) -> None:
    errors = errors_of(good(closed_at=value))
    assert set(errors) == {"closed_at"}
    assert "offset" in errors["closed_at"] or errors["closed_at"] == "is required"


def test_times_in_utc_and_other_offsets_are_accepted() -> None:
    assert validate_case(good(closed_at="2026-11-20T09:30:00Z"), NOW).data.closed_at == datetime(
        2026, 11, 20, 9, 30, tzinfo=UTC
    )
    assert validate_case(good(closed_at="2026-11-20T16:30:00.123+07:00"), NOW).data.closed_at.microsecond == (
        123000
    )


def test_naive_due_and_received_times_are_refused_too() -> None:
    assert set(errors_of(good(due_at="2026-11-21T17:00:00", received_at="2026-11-17"))) == {
        "due_at",
        "received_at",
    }


def test_a_case_closed_in_the_future_or_received_after_closing_is_refused() -> None:
    assert errors_of(good(closed_at="2026-11-21T10:00:00+07:00")) == {"closed_at": "is in the future"}
    # a few minutes of clock difference between the systems is tolerated
    assert validate_case(good(closed_at="2026-11-20T10:05:00Z"), NOW)
    assert errors_of(good(received_at="2026-11-20T17:00:00+07:00")) == {
        "received_at": "must not be after closed_at"
    }


def test_enumerations_and_booleans() -> None:
    assert errors_of(good(channel="email", language="fr", apology_sent="maybe")) == {
        "channel": "must be one of 'sms' or 'zalo'",
        "language": "must be one of 'vi' or 'en'",
        "apology_sent": "must be true or false",
    }
    assert validate_case(good(apology_sent="true"), NOW).data.apology_sent is True


def test_bad_phone_is_a_field_error_that_does_not_echo_the_number() -> None:
    errors = errors_of(good(phone="024 3825 1234"))
    assert set(errors) == {"phone"}
    assert "3825" not in errors["phone"]


def test_every_problem_is_reported_at_once() -> None:
    errors = errors_of(good(phone="+1 202 555 0100", received_at="2026-11-21T00:00:00+07:00"))
    assert set(errors) == {"phone", "received_at"}


@pytest.mark.parametrize("raw", [[], "case", 42, None])
def test_a_case_must_be_an_object(raw: object) -> None:
    assert errors_of(raw) == {"": "a case must be a JSON object"}


def test_on_time_rule() -> None:
    due = datetime(2026, 11, 21, 17, 0, tzinfo=ICT)
    assert derive_on_time(datetime(2026, 11, 20, 16, 0, tzinfo=ICT), None, HANOI) is None
    # closed on a day before the due day: early, even late in the evening
    assert derive_on_time(datetime(2026, 11, 20, 23, 59, tzinfo=ICT), due, HANOI) is OnTime.EARLY
    # closed on the due day, up to the due time: on time
    assert derive_on_time(datetime(2026, 11, 21, 0, 0, tzinfo=ICT), due, HANOI) is OnTime.ON_TIME
    assert derive_on_time(due, due, HANOI) is OnTime.ON_TIME
    # after the due instant: late
    assert derive_on_time(due + timedelta(seconds=1), due, HANOI) is OnTime.LATE
    # the day is the local (Hà Nội) day even when the times are given in UTC
    closed_utc = datetime(2026, 11, 20, 17, 30, tzinfo=UTC)  # 00:30 on 21/11 in Hà Nội
    assert derive_on_time(closed_utc, due.astimezone(UTC), HANOI) is OnTime.ON_TIME
