"""Filters decide whether a handler takes an event (aiogram 3 style, without the magic).

A filter is a `Filter` object or any plain callable `event -> bool`. A filter may return a dict
instead of True: the dict is merged into the data the handler receives, so a filter can hand over
what it found. Filters combine with `&`, `|` and `~`. Filters are synchronous, like the router
(bot.channels.zalo.router): they look at the event, they do no I/O.
"""

from __future__ import annotations

import inspect
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

__all__ = ["And", "EventName", "Filter", "FilterLike", "FilterResult", "Not", "Or", "Text", "check_filter"]

FilterResult = bool | dict[str, Any]
# Any callable `event -> bool | dict`; Filter objects are such callables.
FilterLike = Callable[[Any], Any]


class Filter(ABC):
    """Base for reusable filters."""

    @abstractmethod
    def __call__(self, event: Any) -> FilterResult: ...

    def __and__(self, other: Filter) -> Filter:
        return And(self, other)

    def __or__(self, other: Filter) -> Filter:
        return Or(self, other)

    def __invert__(self) -> Filter:
        return Not(self)


def check_filter(flt: FilterLike, event: Any) -> FilterResult:
    """Run one filter and reduce its answer to bool or a data dict."""
    result = flt(event)
    if inspect.isawaitable(result):
        close = getattr(result, "close", None)
        if close is not None:
            close()  # a coroutine never awaited would warn
        raise TypeError(f"filter {flt!r} must be a plain function: the Zalo router is synchronous")
    if isinstance(result, dict):
        return result
    return bool(result)


class And(Filter):
    def __init__(self, *filters: FilterLike) -> None:
        self.filters = filters

    def __call__(self, event: Any) -> FilterResult:
        data: dict[str, Any] = {}
        for flt in self.filters:
            result = check_filter(flt, event)
            if not result:
                return False
            if isinstance(result, dict):
                data.update(result)
        return data or True


class Or(Filter):
    def __init__(self, *filters: FilterLike) -> None:
        self.filters = filters

    def __call__(self, event: Any) -> FilterResult:
        for flt in self.filters:
            result = check_filter(flt, event)
            if result:
                return result
        return False


class Not(Filter):
    def __init__(self, flt: FilterLike) -> None:
        self.filter = flt

    def __call__(self, event: Any) -> FilterResult:
        return not check_filter(self.filter, event)


class EventName(Filter):
    """Matches events whose `event_name` is one of `names` (e.g. BotEventName.TEXT, "follow")."""

    def __init__(self, *names: str) -> None:
        if not names:
            raise ValueError("EventName needs at least one name")
        self.names = frozenset(str(n) for n in names)

    def __call__(self, event: Any) -> FilterResult:
        return getattr(event, "event_name", None) in self.names


def _fold(text: str, ignore_case: bool) -> str:
    text = unicodedata.normalize("NFC", text).strip()
    return text.casefold() if ignore_case else text


class Text(Filter):
    """Matches on the event's text. With no argument: any non-empty text. The matched text is
    handed to the handler as `text` (NFC-normalised, stripped)."""

    def __init__(
        self,
        *,
        equals: str | tuple[str, ...] | None = None,
        startswith: str | None = None,
        contains: str | None = None,
        ignore_case: bool = True,
    ) -> None:
        self.ignore_case = ignore_case
        options = (equals,) if isinstance(equals, str) else equals
        self.equals = None if options is None else frozenset(_fold(o, ignore_case) for o in options)
        self.startswith = None if startswith is None else _fold(startswith, ignore_case)
        self.contains = None if contains is None else _fold(contains, ignore_case)

    def __call__(self, event: Any) -> FilterResult:
        text = getattr(event, "text", None)
        if not isinstance(text, str) or not text.strip():
            return False
        folded = _fold(text, self.ignore_case)
        if self.equals is not None and folded not in self.equals:
            return False
        if self.startswith is not None and not folded.startswith(self.startswith):
            return False
        if self.contains is not None and self.contains not in folded:
            return False
        return {"text": unicodedata.normalize("NFC", text).strip()}
