"""Every Zalo fixture (bot/channels/zalo_bot/fixtures, zalo_oa/fixtures) parses into its typed
model, wrapped or bare."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from bot.channels.zalo.types import (
    BotEventName,
    BotInfo,
    OAEventName,
    OASendResult,
    OATokenGrant,
    SentBotMessage,
    ZNSRatingPage,
    ZNSSendResult,
    parse_bot_update,
    parse_oa_event,
)
from tests.zalo.conftest import FIXTURES, load_fixture

BOT_KINDS = {
    "text": BotEventName.TEXT,
    "image": BotEventName.IMAGE,
    "sticker": BotEventName.STICKER,
    "unsupported": BotEventName.UNSUPPORTED,
}


@pytest.mark.parametrize("kind", sorted(BOT_KINDS))
def test_bot_events_parse_the_same_wrapped_and_bare(kind: str) -> None:
    wrapped = parse_bot_update(load_fixture(f"bot/{kind}.wrapped.json"))
    bare = parse_bot_update(load_fixture(f"bot/{kind}.bare.json"))
    assert wrapped == bare
    assert wrapped.event_name == BOT_KINDS[kind]
    assert wrapped.user_id == wrapped.chat_id
    assert wrapped.message.from_user.is_bot is False
    assert wrapped.message.sent_at.tzinfo is UTC


def test_bot_text_event_fields() -> None:
    update = parse_bot_update(load_fixture("bot/text.wrapped.json"))
    assert update.text == "5"
    assert update.message.from_user.display_name == "Nguyễn Thị Hoa"
    assert update.message.message_id == "2d758cb5e4ea43d97cf0f0b2a5d1f1a4"
    assert update.message.sent_at == datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_bot_update(load_fixture("bot/unsupported.bare.json")).text is None
    assert parse_bot_update(load_fixture("bot/image.bare.json")).message.caption == "Giấy hẹn trả kết quả"


def test_text_is_normalised_to_nfc_and_numeric_ids_become_strings() -> None:
    decomposed = unicodedata.normalize("NFD", "Rất hài lòng")
    update = parse_bot_update(
        {
            "event_name": "message.text.received",
            "message": {
                "from": {"id": 42, "display_name": decomposed},
                "chat": {"id": 42},
                "text": decomposed,
                "message_id": 7,
                "date": "1767225600000",
            },
        }
    )
    assert update.text == "Rất hài lòng"
    assert update.message.from_user.display_name == "Rất hài lòng"
    assert (update.user_id, update.message.message_id, update.message.date) == ("42", "7", 1767225600000)


def test_oa_events_parse_with_the_right_user() -> None:
    text = parse_oa_event(load_fixture("oa/user_send_text.json"))
    assert (text.event_name, text.text, text.msg_id) == (
        "user_send_text",
        "Rất hài lòng",
        "a1b2c3d4e5f60718293a",
    )
    assert text.user_id == "2468013579246801357"
    assert parse_oa_event(load_fixture("oa/user_send_text.wrapped.json")) == text
    for name in ("follow", "unfollow"):
        event = parse_oa_event(load_fixture(f"oa/{name}.json"))
        assert event.event_name == name
        assert event.user_id == "2468013579246801357"
        assert event.msg_id is None
    received = parse_oa_event(load_fixture("oa/user_received_message.json"))
    assert received.user_id == "2468013579246801357"  # the recipient: the OA sent it
    assert received.message is not None
    assert received.message.tracking_id == "1956"
    assert text.sent_at == datetime(2026, 1, 1, tzinfo=UTC)


def test_user_feedback_documented_shape() -> None:
    event = parse_oa_event(load_fixture("oa/user_feedback.json"))
    assert event.event_name == OAEventName.USER_FEEDBACK
    assert event.feedback is not None
    assert event.feedback.rate == 5
    assert event.feedback.note == "Cán bộ hướng dẫn tận tình, trả kết quả đúng hẹn."
    assert event.feedback.tracking_id == "1956"
    assert event.feedback.feedbacks == ["Thái độ phục vụ tốt", "Đúng hẹn"]
    assert event.msg_id == "7e4c33cfc20b05575c18"
    assert event.user_id is None  # matched by tracking_id, not by user


def test_user_feedback_variant_with_top_level_string_fields() -> None:
    event = parse_oa_event(load_fixture("oa/user_feedback.variant.json"))
    assert event.feedback is not None
    assert (event.feedback.rate, event.feedback.note, event.feedback.tracking_id) == (2, None, "1957")
    assert event.feedback.feedbacks == ["Phải đi lại nhiều lần"]
    assert event.app_id == "3051234567890123456"
    assert event.msg_id == "8f5d44d0d31c16686d29"


@pytest.mark.parametrize("rate", [0, 6, "năm", None])
def test_user_feedback_without_a_valid_rating_is_refused(rate: object) -> None:
    body = load_fixture("oa/user_feedback.json")
    body["message"]["rate"] = rate
    with pytest.raises(ValidationError):
        parse_oa_event(body)


def test_api_answers_parse() -> None:
    assert BotInfo.model_validate(load_fixture("bot_api/get_me.json")["result"]).account_name == "bot.sipas"
    sent = SentBotMessage.model_validate(load_fixture("bot_api/send_message.json")["result"])
    assert sent.date == 1767225600000
    assert OASendResult.model_validate(load_fixture("oa_api/cs_success.json")["data"]).user_id
    assert OATokenGrant.model_validate(load_fixture("oa_api/token_success.json")).expires_in == 90000
    zns = ZNSSendResult.model_validate(load_fixture("zns/send_success.json")["data"])
    assert (zns.msg_id, zns.sent_time) == ("7e4c33cfc20b05575c18", 1767225600000)
    assert zns.quota is not None
    assert zns.quota.remaining_quota == 499
    page = ZNSRatingPage.model_validate(load_fixture("zns/rating_get.json")["data"])
    assert page.total == 2
    assert [(r.msg_id, r.rate, r.tracking_id, r.note) for r in page.data] == [
        ("7e4c33cfc20b05575c18", 5, "1956", "Cán bộ hướng dẫn tận tình"),
        ("9a0b1c2d3e4f5a6b7c8d", 3, None, None),
    ]
    assert page.data[0].submitted_at == datetime(2026, 1, 1, 1, 0, tzinfo=UTC)


def test_every_fixture_file_is_covered() -> None:
    """A fixture added later must be parsed by some test here: list them all."""
    names = {f"{group}/{p.name}" for group, folder in FIXTURES.items() for p in folder.glob("*.json")}
    assert {f"bot/{k}.{w}.json" for k in BOT_KINDS for w in ("wrapped", "bare")} <= names
    for name in sorted(names):
        body = load_fixture(name)
        if name.startswith("bot/"):
            assert parse_bot_update(body).event_name in set(BotEventName)
        elif name.startswith("oa/"):
            assert parse_oa_event(body).event_name in set(OAEventName)
        else:
            assert isinstance(body, dict)
            assert "ok" in body or "error" in body or "access_token" in body
