"""Per-agency channel rules (config/agencies/channels.yaml) and the start codes that take a survey
to the Zalo bot."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from config.settings import PROJECT_ROOT
from flows.channel_policy import (
    ChannelPolicy,
    ChannelRulesError,
    Fallback,
    Strategy,
    choose_start,
    load_rules,
    policy_for,
)
from flows.routes import START_CODE_ALPHABET, START_CODE_LENGTH, ensure_start_code, find_start_codes
from storage.crypto import PhoneVault
from storage.models import Agency, AgencyLevel, Channel, Route
from tests.flows.factories import scheduled_survey


def _chain(session: Session) -> Agency:
    province = Agency(code="HN", name="Hà Nội", level=AgencyLevel.PROVINCE)
    session.add(province)
    session.flush()
    district = Agency(code="HN-TX", name="Thanh Xuân", level=AgencyLevel.DISTRICT, parent_id=province.id)
    session.add(district)
    session.flush()
    ward = Agency(code="HN-TX-HD", name="Hạ Đình", level=AgencyLevel.COMMUNE, parent_id=district.id)
    session.add(ward)
    session.flush()
    return ward


def test_shipped_rules_load_and_default_to_sms_first() -> None:
    rules = load_rules(PROJECT_ROOT / "config" / "agencies" / "channels.yaml")
    assert rules.default == ChannelPolicy()
    assert rules.default.strategy is Strategy.SMS_FIRST
    assert rules.default.fallback is Fallback.SMS
    assert rules.default.flow_for(Channel.ZALO) == "sipas-zalo"


def test_missing_file_means_defaults(tmp_path: Path) -> None:
    assert load_rules(tmp_path / "absent.yaml").default == ChannelPolicy()


def test_rules_inherit_down_the_agency_tree_and_reload_on_change(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    path = tmp_path / "channels.yaml"
    path.write_text(
        "default: {fallback: none}\n"
        "agencies:\n"
        "  HN: {strategy: zalo_first, oa_window_hours: 48}\n"
        "  HN-TX-HD: {oa_window_hours: 100}\n",
        encoding="utf-8",
    )
    with sessions() as session, session.begin():
        ward = _chain(session)
        policy = policy_for(load_rules(path), ward)
        assert (policy.strategy, policy.fallback, policy.oa_window_hours) == (
            Strategy.ZALO_FIRST,
            Fallback.NONE,
            100,
        )
        district = ward.parent
        assert district is not None
        assert policy_for(load_rules(path), district).oa_window_hours == 48
        path.write_text("agencies:\n  HN-TX: {strategy: sms_first}\n", encoding="utf-8")
        os.utime(path, (1, 1))  # a different modification time, however fast the edit
        assert policy_for(load_rules(path), ward).strategy is Strategy.SMS_FIRST


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("default: {strategy: zalo_only}\n", "strategy"),
        ("agencies:\n  HN: {oa_window_hours: 500}\n", "oa_window_hours"),
        ("agencies:\n  HN: {stratgy: zalo_first}\n", "stratgy"),
        ("agencies:\n  HN: zalo_first\n", "HN"),
        ("- a list\n", "mapping"),
        ("default: [\n", "cannot read"),
    ],
)
def test_a_bad_rules_file_is_refused_with_the_reason(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ChannelRulesError, match=problem):
        load_rules(path)


ZALO_FIRST = ChannelPolicy(strategy=Strategy.ZALO_FIRST)
SMS_FIRST = ChannelPolicy()


@pytest.mark.parametrize(
    ("policy", "phone", "oa_user", "preference", "zns", "expected"),
    [
        (SMS_FIRST, True, False, None, True, (Channel.SMS, None)),
        (SMS_FIRST, True, True, None, True, (Channel.SMS, None)),
        (SMS_FIRST, True, True, Channel.ZALO, True, (Channel.ZALO, Route.ZALO_OA)),
        (SMS_FIRST, False, True, None, False, (Channel.ZALO, Route.ZALO_OA)),
        (ZALO_FIRST, True, True, None, True, (Channel.ZALO, Route.ZALO_OA)),
        (ZALO_FIRST, True, False, None, True, (Channel.ZALO, Route.ZNS)),
        (ZALO_FIRST, True, False, None, False, (Channel.SMS, None)),  # no ZNS template
        (ZALO_FIRST, True, True, Channel.SMS, True, (Channel.SMS, None)),  # the citizen's choice
        (ZALO_FIRST, False, True, Channel.SMS, True, (Channel.ZALO, Route.ZALO_OA)),  # no phone
    ],
)
def test_where_a_survey_starts(
    policy: ChannelPolicy,
    phone: bool,
    oa_user: bool,
    preference: Channel | None,
    zns: bool,
    expected: tuple[Channel, Route | None],
) -> None:
    assert (
        choose_start(policy, has_phone=phone, has_oa_user=oa_user, preference=preference, zns_ready=zns)
        == expected
    )


@pytest.mark.parametrize(
    ("text", "codes"),
    [
        ("KX7P2M", ["KX7P2M"]),
        ("kx7p2m", ["KX7P2M"]),
        ("Mã: KX7 P2M", ["KX7P2M"]),
        ("ma kx7-p2m", ["KX7P2M"]),
        ("Mã khảo sát KX7P2M ạ", ["KX7P2M"]),
        ("Ｋ Ｘ7P2M", ["KX7P2M"]),  # full-width letters (some phone keyboards)
        ("5", []),
        ("Rất hài lòng", []),
        ("chậm quá", []),
        ("123456", []),  # 0 and 1 are not in the alphabet
        ("KX7P2MA", []),  # seven characters
    ],
)
def test_start_codes_are_found_in_what_citizens_type(text: str, codes: list[str]) -> None:
    assert find_start_codes(text) == codes


def test_start_codes_are_made_once_and_unique(sessions: sessionmaker[Session], vault: PhoneVault) -> None:
    with sessions() as session, session.begin():
        first = scheduled_survey(session, vault)
        second = scheduled_survey(session, vault, phone="84987654321")
        code = ensure_start_code(session, first)
        assert ensure_start_code(session, first) == code
        other = ensure_start_code(session, second)
    assert code != other
    for value in (code, other):
        assert len(value) == START_CODE_LENGTH
        assert set(value) <= set(START_CODE_ALPHABET)
        assert find_start_codes(value) == [value]
