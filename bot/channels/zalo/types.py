"""Typed shapes of what Zalo sends and answers (Bot Platform, Official Account, ZNS).

Parsing is lenient where the providers are inconsistent (ids as numbers or strings, timestamps as
numbers or strings, webhook bodies with or without the `{ok, result}` wrapper) and strict where our
logic depends on a value (a rating must be 1..5). Unknown fields are kept (`extra="allow"`), so a
new provider field never makes an event unreadable. Every text is normalised to NFC first: phones
may send decomposed Vietnamese.
"""

from __future__ import annotations

import enum
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

__all__ = [
    "BotChat",
    "BotEventName",
    "BotInfo",
    "BotMessage",
    "BotUpdate",
    "BotUser",
    "BotWebhookInfo",
    "OAEvent",
    "OAEventName",
    "OAFeedback",
    "OAMessage",
    "OAParty",
    "OASendResult",
    "OATokenGrant",
    "SentBotMessage",
    "ZNSQuota",
    "ZNSRating",
    "ZNSRatingPage",
    "ZNSSendResult",
    "citizen_side",
    "ms_to_datetime",
    "parse_bot_update",
    "parse_oa_event",
    "unwrap_envelope",
    "validation_summary",
]


class BotEventName(enum.StrEnum):
    TEXT = "message.text.received"
    IMAGE = "message.image.received"
    STICKER = "message.sticker.received"
    UNSUPPORTED = "message.unsupported.received"


class OAEventName(enum.StrEnum):
    USER_SEND_TEXT = "user_send_text"
    FOLLOW = "follow"
    UNFOLLOW = "unfollow"
    USER_RECEIVED_MESSAGE = "user_received_message"
    USER_FEEDBACK = "user_feedback"


def _to_str(value: Any) -> Any:
    """Zalo ids are strings in the docs but numbers in some payloads; keep them as strings."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    return value


def _nfc(value: Any) -> Any:
    return unicodedata.normalize("NFC", value) if isinstance(value, str) else value


def _to_int(value: Any) -> Any:
    """Timestamps and counters arrive as numbers or numeric strings (`"1616673095659"`)."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return value


ZaloId = Annotated[str, BeforeValidator(_to_str)]
Text = Annotated[str, BeforeValidator(_nfc)]
IntLike = Annotated[int, BeforeValidator(_to_int)]


def ms_to_datetime(ms: int) -> datetime:
    """Zalo timestamps are Unix milliseconds; ours are aware UTC datetimes."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


class _ZaloModel(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)


def unwrap_envelope(data: Any) -> Any:
    """`{"ok": true, "result": {...}}` -> `{...}`; a bare body is returned as it is."""
    if isinstance(data, Mapping) and "result" in data and "ok" in data:
        return data["result"]
    return data


# --- Zalo Bot Platform -----------------------------------------------------------------------


class BotUser(_ZaloModel):
    id: ZaloId
    display_name: Text | None = None
    is_bot: bool = False


class BotChat(_ZaloModel):
    id: ZaloId
    chat_type: str | None = None


class BotMessage(_ZaloModel):
    from_user: BotUser = Field(alias="from")
    chat: BotChat
    message_id: ZaloId
    date: IntLike
    text: Text | None = None
    caption: Text | None = None
    photo_url: str | None = None
    sticker: str | None = None

    @property
    def sent_at(self) -> datetime:
        return ms_to_datetime(self.date)


class BotUpdate(_ZaloModel):
    """One incoming Bot Platform event (webhook body or one getUpdates result)."""

    event_name: str
    message: BotMessage

    @property
    def user_id(self) -> str:
        return self.message.from_user.id

    @property
    def chat_id(self) -> str:
        return self.message.chat.id

    @property
    def text(self) -> str | None:
        return self.message.text


class BotInfo(_ZaloModel):
    """getMe."""

    id: ZaloId
    account_name: str | None = None
    account_type: str | None = None
    display_name: Text | None = None
    can_join_groups: bool | None = None


class BotWebhookInfo(_ZaloModel):
    """getWebhookInfo / setWebhook: the URL Zalo posts to ("" when none is set)."""

    url: str = ""
    updated_at: IntLike | None = None


class SentBotMessage(_ZaloModel):
    """sendMessage."""

    message_id: ZaloId
    date: IntLike | None = None


def parse_bot_update(data: Any) -> BotUpdate:
    """A Bot Platform event, from the documented `{ok, result}` body or the bare one."""
    return BotUpdate.model_validate(unwrap_envelope(data))


# --- Zalo Official Account --------------------------------------------------------------------


class OAParty(_ZaloModel):
    id: ZaloId


class OAMessage(_ZaloModel):
    """`message` of an OA event: a text message, or the message an event refers to."""

    msg_id: ZaloId | None = None
    text: Text | None = None
    tracking_id: ZaloId | None = None


class OAFeedback(_ZaloModel):
    """`message` of a `user_feedback` event: the citizen's stars on a ZNS service-rating message.

    Documented as `{note, rate, submit_time, msg_id, feedbacks[], tracking_id}`; some senders use
    `rating` for `rate`, `submitDate` for `submit_time` or a single string for `feedbacks`.
    """

    msg_id: ZaloId | None = None
    rate: IntLike = Field(ge=1, le=5)
    note: Text | None = None
    feedbacks: list[Text] = Field(default_factory=list)
    tracking_id: ZaloId | None = None
    submit_time: IntLike | None = None

    @model_validator(mode="before")
    @classmethod
    def _variants(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        fixed = dict(data)
        if "rate" not in fixed and "rating" in fixed:
            fixed["rate"] = fixed.pop("rating")
        if "submit_time" not in fixed and "submitDate" in fixed:
            fixed["submit_time"] = fixed.pop("submitDate")
        if "tracking_id" not in fixed and "trackingId" in fixed:
            fixed["tracking_id"] = fixed.pop("trackingId")
        if "msg_id" not in fixed and "msgId" in fixed:
            fixed["msg_id"] = fixed.pop("msgId")
        feedbacks = fixed.get("feedbacks")
        if isinstance(feedbacks, str):
            fixed["feedbacks"] = [feedbacks] if feedbacks else []
        elif feedbacks is None:
            fixed["feedbacks"] = []
        if fixed.get("note") == "":
            fixed["note"] = None
        return fixed


def citizen_side(event_name: str) -> str | None:
    """Which party of an OA event is the citizen: the sender of what the user does (messages,
    reactions, clicks, forms, follow), the recipient of what the OA sent (received, seen)."""
    if event_name.startswith(("user_received", "user_seen", "oa_send")):
        return "recipient"
    if event_name.startswith("user_") or event_name in (OAEventName.FOLLOW, OAEventName.UNFOLLOW):
        return "sender"
    return None


def validation_summary(exc: ValidationError) -> str:
    """Where and why a Zalo body did not validate, WITHOUT the input values (user ids, texts):
    `sender.id: Input should be a valid string; ...`."""
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'body'}: {error['msg']}"
        for error in exc.errors(include_input=False, include_url=False)
    )[:300]


_FEEDBACK_TOP_LEVEL = ("rate", "rating", "note", "feedbacks", "tracking_id", "submit_time")


class OAEvent(_ZaloModel):
    """One OA/ZNS webhook event: `{app_id, sender{id}, recipient{id}, event_name, message, timestamp}`.

    `follow`/`unfollow` carry `follower{id}`; `user_feedback` carries the rating in `message` and
    usually no user id at all (it is matched by `tracking_id` = our survey id).
    """

    event_name: str
    app_id: ZaloId | None = None
    oa_id: ZaloId | None = None
    sender: OAParty | None = None
    recipient: OAParty | None = None
    follower: OAParty | None = None
    message: OAMessage | None = None
    feedback: OAFeedback | None = None
    timestamp: IntLike | None = None

    @model_validator(mode="before")
    @classmethod
    def _split_feedback(cls, data: Any) -> Any:
        """For `user_feedback`, read the rating into `feedback` (from `message`, or from the top
        level where some senders put it); a feedback without a valid rate is refused."""
        if not isinstance(data, Mapping) or data.get("event_name") != OAEventName.USER_FEEDBACK:
            return data
        fixed = dict(data)
        source = dict(fixed.get("message") or {})
        for key in _FEEDBACK_TOP_LEVEL:
            if key not in source and key in fixed:
                source[key] = fixed[key]
        fixed["feedback"] = source
        return fixed

    @field_validator("event_name")
    @classmethod
    def _name_given(cls, value: str) -> str:
        if not value:
            raise ValueError("event_name is empty")
        return value

    @property
    def user_id(self) -> str | None:
        """The citizen's OA user id, whichever side of the event they are on."""
        if self.follower is not None:
            return self.follower.id
        side = citizen_side(self.event_name)
        party = self.sender if side == "sender" else self.recipient if side == "recipient" else None
        return party.id if party else None

    @property
    def msg_id(self) -> str | None:
        if self.feedback is not None and self.feedback.msg_id:
            return self.feedback.msg_id
        return self.message.msg_id if self.message else None

    @property
    def text(self) -> str | None:
        return self.message.text if self.message else None

    @property
    def sent_at(self) -> datetime | None:
        return ms_to_datetime(self.timestamp) if self.timestamp is not None else None


def parse_oa_event(data: Any) -> OAEvent:
    """An OA/ZNS event; a wrapped `{ok, result}` body is accepted too."""
    return OAEvent.model_validate(unwrap_envelope(data))


class OASendResult(_ZaloModel):
    """`data` of /v3.0/oa/message/cs."""

    message_id: ZaloId
    user_id: ZaloId | None = None


class OATokenGrant(_ZaloModel):
    """The OAuth v4 answer to a refresh: a new access token AND a new single-use refresh token."""

    access_token: str
    refresh_token: str
    expires_in: IntLike


# --- ZNS ----------------------------------------------------------------------------------------


class ZNSQuota(_ZaloModel):
    daily_quota: IntLike | None = Field(default=None, alias="dailyQuota")
    remaining_quota: IntLike | None = Field(default=None, alias="remainingQuota")


class ZNSSendResult(_ZaloModel):
    """`data` of /message/template."""

    msg_id: ZaloId
    sent_time: IntLike | None = None
    quota: ZNSQuota | None = None


class ZNSRating(_ZaloModel):
    """One entry of /rating/get `data.data[]`."""

    msg_id: ZaloId = Field(alias="msgId")
    tracking_id: ZaloId | None = Field(default=None, alias="trackingId")
    rate: IntLike = Field(ge=1, le=5)
    note: Text | None = None
    feedbacks: list[Text] = Field(default_factory=list)
    submit_date: IntLike | None = Field(default=None, alias="submitDate")

    @field_validator("tracking_id", "note", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @property
    def submitted_at(self) -> datetime | None:
        return ms_to_datetime(self.submit_date) if self.submit_date is not None else None


class ZNSRatingPage(_ZaloModel):
    """`data` of /rating/get: one page of ratings and the total for the period."""

    total: IntLike = 0
    data: list[ZNSRating] = Field(default_factory=list)
