"""Rule values as staff write them (CLI, forms, files), and automatic sampling's arithmetic."""

from __future__ import annotations

from datetime import date

import pytest

from flows.rules import (
    DEFAULT_INBOX_REPLY,
    DEFAULT_INBOX_REPLY_ZALO,
    RuleValueError,
    Sampling,
    auto_probability,
    rule_spec,
)


@pytest.mark.parametrize(
    ("name", "text", "stored"),
    [
        ("sampling", "0.25", {"rate": 0.25}),
        ("sampling", "auto", {"auto": {"margin": 0.05}}),
        ("sampling", "auto margin=0.03 cases=1200", {"auto": {"margin": 0.03, "expected_cases": 1200}}),
        ("send_window", "08:00-17:30", "08:00-17:30"),
        ("holidays", "2026-09-02, 2026-09-01\n2026-09-02", ["2026-09-01", "2026-09-02"]),
        ("first_message_delay", "90m", 5400),
        ("reminder_after", "24h", 86400),
        ("expiry", "3d", 259200),
        ("frequency_cap_days", "0", 0),
        ("channel.strategy", "zalo_first", "zalo_first"),
        ("channel.oa_window_hours", "48", 48),
        ("desk_email", "pakn@hanoi.gov.vn", "pakn@hanoi.gov.vn"),
        ("inbox_reply", DEFAULT_INBOX_REPLY, DEFAULT_INBOX_REPLY),
        ("inbox_reply_zalo", DEFAULT_INBOX_REPLY_ZALO, DEFAULT_INBOX_REPLY_ZALO),
        (
            "inbox_reply_zalo",
            "Số này  chỉ nhận khảo sát.\nHỏi {agency}",
            "Số này chỉ nhận khảo sát. Hỏi {agency}",
        ),
        # Holidays with names: one a line, or after commas; a day alone keeps working.
        (
            "holidays",
            "2026-09-02 Quốc khánh\n2026-09-01   Nghỉ lễ Quốc khánh",
            ["2026-09-01 Nghỉ lễ Quốc khánh", "2026-09-02 Quốc khánh"],
        ),
        (
            "holidays",
            "2026-04-30 Giải phóng miền Nam, 2026-05-01 Quốc tế lao động; 2026-01-01",
            ["2026-01-01", "2026-04-30 Giải phóng miền Nam", "2026-05-01 Quốc tế lao động"],
        ),
        ("holidays", "2026-09-02 2026-09-01", ["2026-09-01", "2026-09-02"]),
    ],
)
def test_values_written_by_staff(name: str, text: str, stored: object) -> None:
    spec = rule_spec(name)
    assert spec.parse(text) == stored
    assert spec.parse(spec.show(stored)) == stored  # what a page shows can be typed back


@pytest.mark.parametrize(
    ("name", "text", "says"),
    [
        ("sampling", "1.5", "from 0 to 1"),
        ("sampling", "auto margin=0.5", "margin"),
        ("send_window", "21:00-07:00", "start before it ends"),
        ("holidays", "2026-02-30", "YYYY-MM-DD"),
        ("reminder_after", "10", "from 60 seconds"),
        ("expiry", "soon", "duration"),
        ("channel.strategy", "carrier_pigeon", "sms_first"),
        ("desk_email", "not an address", "e-mail"),
        ("inbox_reply", "Số này chỉ nhận khảo sát", "unaccented"),
        ("inbox_reply", "Xem {case_id}", "only placeholder"),
        ("inbox_reply", "x" * 161, "limit 160"),
        ("inbox_reply_zalo", "Xem {case_id}", "only placeholder"),
        ("inbox_reply_zalo", "{agency} " + "x" * 1750, "at most 2000"),
        ("holidays", "Tết 2026-02-17", "'Tết' is not a date"),
        ("holidays", "2026-09-01, 2026-9-2", "'2026-9-2' is not a date"),
        ("holidays", "2026-09-02 " + "x" * 81, "at most 80"),
    ],
)
def test_bad_values_are_refused_with_the_reason(name: str, text: str, says: str) -> None:
    with pytest.raises(RuleValueError, match=says):
        rule_spec(name).parse(text)


def test_unknown_rule_names_the_known_ones() -> None:
    with pytest.raises(RuleValueError, match="send_window"):
        rule_spec("send_windows")


def test_auto_sampling_arithmetic() -> None:
    # N = 1000 cases, e = 5%: n = 1000 / (1 + 1000 * 0.0025) = 285.7 answers needed; at a 40%
    # response rate 714.3 must be asked: p = 0.714.
    assert auto_probability(1000, 0.4, 0.05) == pytest.approx(285.714 / 400, rel=1e-4)
    # A small unit needs nearly everyone; a poor response rate cannot push p above 1.
    assert auto_probability(50, 0.2, 0.05) == 1.0
    assert auto_probability(0, 0.4, 0.05) == 1.0
    assert Sampling.from_json({"auto": {"margin": 0.03, "expected_cases": 9}}).describe() == (
        "auto margin=0.03 cases=9"
    )


def test_a_holiday_list_from_a_file_may_map_days_to_names() -> None:
    """YAML reads `2026-09-02:` as a date: a mapping of days to names, or a plain list, both work."""
    parse = rule_spec("holidays").parse
    assert parse({date(2026, 9, 2): "Quốc khánh", date(2026, 9, 1): None}) == [
        "2026-09-01",
        "2026-09-02 Quốc khánh",
    ]
    assert parse([date(2026, 1, 1), "2026-04-30 Giải phóng miền Nam"]) == [
        "2026-01-01",
        "2026-04-30 Giải phóng miền Nam",
    ]
