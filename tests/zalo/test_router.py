"""Router, filters and middlewares (all synchronous): which handler takes an event, and what it
receives."""

from __future__ import annotations

import unicodedata
from typing import Any

import pytest

from bot.channels.zalo import UNHANDLED, BotEventName, BotUpdate, Dispatcher, EventName, OAEvent, Router, Text
from bot.channels.zalo.router import NextHandler
from bot.channels.zalo.simulator.citizen import BOT_STICKER, BOT_UNSUPPORTED, bot_update
from tests.zalo.conftest import load_fixture


def update(text: str | None = "5", event_name: str = BotEventName.TEXT) -> BotUpdate:
    from bot.channels.zalo import parse_bot_update

    return parse_bot_update(bot_update("user-1", text, event_name=event_name, message_id="m-1"))


def test_first_matching_handler_takes_the_event_and_gets_filter_data() -> None:
    dp = Dispatcher()
    seen: list[str] = []

    @dp.message(EventName(BotEventName.TEXT), Text(equals=("dừng", "stop")))
    def stop(event: BotUpdate, text: str) -> str:
        seen.append(f"stop:{text}")
        return "stopped"

    @dp.message(EventName(BotEventName.TEXT))
    def answer(event: BotUpdate) -> str:
        seen.append(f"answer:{event.text}")
        return "answered"

    assert dp.feed_bot_update(update("  DỪNG ")) == "stopped"
    assert dp.feed_bot_update(update(unicodedata.normalize("NFD", "Dừng"))) == "stopped"
    assert dp.feed_bot_update(update("4")) == "answered"
    assert dp.feed_bot_update(update(None, BOT_STICKER)) is UNHANDLED
    assert seen == ["stop:DỪNG", "stop:Dừng", "answer:4"]


def test_filters_combine_and_plain_callables_work() -> None:
    dp = Dispatcher()

    @dp.message(EventName(BotEventName.TEXT) & ~Text(startswith="#"), lambda e: e.user_id == "user-1")
    def plain(event: BotUpdate) -> str:
        return "plain"

    @dp.message(EventName(BOT_STICKER) | EventName(BOT_UNSUPPORTED))
    def fallback(event: BotUpdate) -> str:
        return "fallback"

    def is_hashtag(event: BotUpdate) -> bool:
        return (event.text or "").startswith("#")

    @dp.message(is_hashtag)
    def hashtag(event: BotUpdate) -> str:
        return "hashtag"

    assert dp.feed_bot_update(update("xin chào")) == "plain"
    assert dp.feed_bot_update(update("#tag")) == "hashtag"
    assert dp.feed_bot_update(update(None, BOT_UNSUPPORTED)) == "fallback"
    assert dp.feed_bot_update(update(None, BOT_STICKER)) == "fallback"


def test_nested_routers_in_inclusion_order() -> None:
    dp, surveys, help_router, late = (
        Dispatcher(),
        Router(name="surveys"),
        Router(name="help"),
        Router(name="late"),
    )
    dp.include_router(surveys)
    surveys.include_router(help_router)
    dp.include_router(late)

    @help_router.message(Text(equals="help"))
    def on_help(event: BotUpdate) -> str:
        return "help"

    @surveys.message(Text(equals="1"))
    def on_one(event: BotUpdate) -> str:
        return "one"

    @late.message()
    def anything(event: BotUpdate, router: Router) -> str:
        return f"late via {router.name}"

    assert dp.feed_bot_update(update("1")) == "one"
    assert dp.feed_bot_update(update("help")) == "help"
    assert dp.feed_bot_update(update("other")) == "late via late"


def test_include_router_refuses_cycles_and_second_parents() -> None:
    a, b, c = Router(name="a"), Router(name="b"), Router(name="c")
    a.include_router(b)
    b.include_router(c)
    with pytest.raises(ValueError, match="cycle"):
        c.include_router(Router(name="x")).include_router(a)
    with pytest.raises(ValueError, match="already included"):
        Router().include_router(b)
    with pytest.raises(ValueError, match="itself"):
        a.include_router(a)


def test_outer_middlewares_see_every_event_inner_only_handled_ones() -> None:
    dp = Dispatcher()
    child = dp.include_router(Router(name="child"))
    calls: list[str] = []

    def outer(handler: NextHandler, event: Any, data: dict[str, Any]) -> Any:
        calls.append("outer>")
        data["survey_id"] = 17
        result = handler(event, data)
        calls.append("<outer")
        return result

    def inner(handler: NextHandler, event: Any, data: dict[str, Any]) -> Any:
        calls.append(f"inner({data['survey_id']})")
        return handler(event, data)

    def child_outer(handler: NextHandler, event: Any, data: dict[str, Any]) -> Any:
        calls.append("child-outer")
        return handler(event, data)

    dp.message.outer_middleware(outer)
    dp.message.middleware(inner)
    child.message.outer_middleware(child_outer)

    @child.message(Text(equals="có"))
    def yes(event: BotUpdate, survey_id: int, **data: Any) -> str:
        calls.append(f"handler({survey_id},{sorted(data)})")
        return "yes"

    assert dp.feed_bot_update(update("có"), event_id=5) == "yes"
    assert calls == [
        "outer>",
        "child-outer",
        "handler(17,['dispatcher', 'event_id', 'router', 'text'])",
        "<outer",
    ]
    calls.clear()
    assert dp.feed_bot_update(update("không")) is UNHANDLED
    assert calls == ["outer>", "child-outer", "<outer"]


def test_inner_middleware_wraps_only_its_routers_handlers() -> None:
    dp = Dispatcher()
    calls: list[str] = []

    def inner(handler: NextHandler, event: Any, data: dict[str, Any]) -> Any:
        calls.append("inner")
        return handler(event, data)

    dp.message.middleware(inner)

    @dp.message(Text(equals="a"))
    def a(event: BotUpdate) -> str:
        return "a"

    dp.feed_bot_update(update("a"))
    dp.feed_bot_update(update("b"))
    assert calls == ["inner"]


def test_a_middleware_can_stop_the_event() -> None:
    dp = Dispatcher()

    @dp.message.outer_middleware
    def drop_bots(handler: NextHandler, event: BotUpdate, data: dict[str, Any]) -> Any:
        if event.message.from_user.is_bot:
            return "dropped"
        return handler(event, data)

    @dp.message()
    def any_message(event: BotUpdate) -> str:
        return "handled"

    from bot.channels.zalo import parse_bot_update

    body = bot_update("b", "hi")
    body["message"]["from"]["is_bot"] = True
    assert dp.feed_bot_update(parse_bot_update(body)) == "dropped"
    assert dp.feed_bot_update(update("hi")) == "handled"


def test_oa_events_route_by_name_and_feed_raw_parses_stored_bodies() -> None:
    dp = Dispatcher()
    ratings: list[tuple[int, str | None]] = []

    @dp.oa_event(EventName("user_feedback"))
    def on_feedback(event: OAEvent) -> str:
        assert event.feedback is not None
        ratings.append((event.feedback.rate, event.feedback.tracking_id))
        return "rating"

    @dp.oa_event(EventName("follow", "unfollow"))
    def on_follow(event: OAEvent) -> str:
        return f"{event.event_name}:{event.user_id}"

    @dp.oa_event(Text())
    def on_text(event: OAEvent, text: str) -> str:
        return f"text:{text}"

    @dp.message()
    def bot_any(event: BotUpdate) -> str:
        return f"bot:{event.event_name}"

    assert dp.feed_raw("zalo_oa", load_fixture("oa/user_feedback.json")) == "rating"
    assert dp.feed_raw("zalo_oa", '{"event_name":"follow","follower":{"id":"9"}}') == "follow:9"
    raw_text = (
        b'{"ok":true,"result":{"event_name":"user_send_text","sender":{"id":"9"},'
        b'"message":{"text":"T\xe1\xbb\x91t","msg_id":"x"}}}'
    )
    assert dp.feed_raw("zalo_oa", raw_text) == "text:Tốt"
    assert dp.feed_raw("zalo_oa", load_fixture("oa/user_received_message.json")) is UNHANDLED
    assert dp.feed_raw("zalo_bot", load_fixture("bot/unsupported.wrapped.json")) == (
        "bot:message.unsupported.received"
    )
    assert ratings == [(5, "1956")]


def test_handlers_and_filters_must_be_plain_functions() -> None:
    """The router runs inside the inbound job's transaction, without an event loop."""
    router = Router()

    async def coroutine_handler(event: BotUpdate) -> str:
        return "never"

    with pytest.raises(TypeError, match="synchronous"):
        router.message()(coroutine_handler)

    async def coroutine_filter(event: BotUpdate) -> bool:
        return True

    dp = Dispatcher()
    dp.message(coroutine_filter)(lambda event: "never")
    with pytest.raises(TypeError, match="synchronous"):
        dp.feed_bot_update(update("5"))
