"""Routing incoming Zalo events to handlers, in the style of aiogram 3, but synchronous.

The router is an internal detail of the Zalo adapters: the inbound job (workers/zalo_inbound.py)
feeds it one stored event inside the job's database transaction, and its handlers do blocking
database work there. Handlers, filters and middlewares are therefore plain functions; an `async
def` handler is refused when it is registered (it would need an event loop the job does not run).

- A `Router` has one observer per event family: `router.message` for Bot Platform updates
  (BotUpdate) and `router.oa_event` for Official Account / ZNS events (OAEvent). Register handlers
  with `@router.message(filter, ...)`; the first handler whose filters all pass takes the event.
- Routers nest (`include_router`): an event no handler of a router takes goes on to its
  sub-routers, in the order they were included.
- Middlewares are `(handler, event, data) -> result`. Outer middlewares
  (`observer.outer_middleware`) see every event that reaches that router's observer, before any
  filter; inner ones (`observer.middleware`) wrap only a handler whose filters passed.
- Handlers receive the typed event first, then those entries of `data` that they name as
  parameters (or all of them with `**kwargs`).
- `Dispatcher` is the root router and the entry point: `feed_bot_update`, `feed_oa_event`,
  `feed_raw` (parses a stored raw body first). flows/ never imports it: the handlers, in workers/,
  call flows.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from bot.channels.zalo.filters import FilterLike, check_filter
from bot.channels.zalo.types import BotUpdate, OAEvent, parse_bot_update, parse_oa_event

__all__ = ["UNHANDLED", "Dispatcher", "EventObserver", "Middleware", "NextHandler", "Router"]

E = TypeVar("E")
NextHandler = Callable[[Any, dict[str, Any]], Any]
Middleware = Callable[[NextHandler, Any, dict[str, Any]], Any]
HandlerCallback = Callable[..., Any]
Provider = Literal["zalo_bot", "zalo_oa"]


class _Unhandled:
    def __repr__(self) -> str:
        return "UNHANDLED"

    def __bool__(self) -> bool:
        return False


UNHANDLED: Any = _Unhandled()
"""Returned by propagation when no handler took the event."""


def _wrap(middlewares: Sequence[Middleware], handler: NextHandler) -> NextHandler:
    """Nest middlewares around `handler`: the first registered runs outermost."""
    for middleware in reversed(middlewares):
        handler = functools.partial(middleware, handler)
    return handler


@dataclass
class HandlerObject:
    callback: HandlerCallback
    filters: tuple[FilterLike, ...]
    _params: frozenset[str] | None = field(init=False)

    def __post_init__(self) -> None:
        if inspect.iscoroutinefunction(self.callback):
            raise TypeError(f"handler {self.callback!r} must be a plain function: the router is synchronous")
        params = inspect.signature(self.callback).parameters.values()
        takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
        names = [p.name for p in params if p.kind is not inspect.Parameter.VAR_POSITIONAL]
        self._params = None if takes_all else frozenset(names[1:])

    def check(self, event: Any) -> tuple[bool, dict[str, Any]]:
        found: dict[str, Any] = {}
        for flt in self.filters:
            result = check_filter(flt, event)
            if not result:
                return False, {}
            if isinstance(result, dict):
                found.update(result)
        return True, found

    def call(self, event: Any, data: dict[str, Any]) -> Any:
        kwargs = data if self._params is None else {k: v for k, v in data.items() if k in self._params}
        return self.callback(event, **kwargs)


class EventObserver(Generic[E]):
    """Handlers and middlewares for one event family within one router."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.handlers: list[HandlerObject] = []
        self.outer_middlewares: list[Middleware] = []
        self.inner_middlewares: list[Middleware] = []

    def register(self, callback: HandlerCallback, *filters: FilterLike) -> HandlerCallback:
        self.handlers.append(HandlerObject(callback, filters))
        return callback

    def __call__(self, *filters: FilterLike) -> Callable[[HandlerCallback], HandlerCallback]:
        """Decorator: `@router.message(EventName(BotEventName.TEXT), Text(equals="stop"))`."""

        def decorator(callback: HandlerCallback) -> HandlerCallback:
            return self.register(callback, *filters)

        return decorator

    def outer_middleware(self, middleware: Middleware) -> Middleware:
        self.outer_middlewares.append(middleware)
        return middleware

    def middleware(self, middleware: Middleware) -> Middleware:
        self.inner_middlewares.append(middleware)
        return middleware

    def trigger(self, event: E, data: dict[str, Any]) -> Any:
        """Run the first handler whose filters pass (through the inner middlewares)."""
        for handler in self.handlers:
            matched, found = handler.check(event)
            if matched:
                return _wrap(self.inner_middlewares, handler.call)(event, {**data, **found})
        return UNHANDLED


class Router:
    def __init__(self, name: str | None = None) -> None:
        self.name = name or f"router-{id(self):x}"
        self.message: EventObserver[BotUpdate] = EventObserver("message")
        self.oa_event: EventObserver[OAEvent] = EventObserver("oa_event")
        self.observers: dict[str, EventObserver[Any]] = {"message": self.message, "oa_event": self.oa_event}
        self.sub_routers: list[Router] = []
        self.parent: Router | None = None

    def __repr__(self) -> str:
        return f"<Router {self.name}>"

    def include_router(self, router: Router) -> Router:
        if router is self:
            raise ValueError("a router cannot include itself")
        if router.parent is not None:
            raise ValueError(f"{router!r} is already included in {router.parent!r}")
        ancestor: Router | None = self
        while ancestor is not None:
            if ancestor is router:
                raise ValueError(f"including {router!r} in {self!r} would make a cycle")
            ancestor = ancestor.parent
        router.parent = self
        self.sub_routers.append(router)
        return router

    def propagate(self, observer_name: str, event: Any, data: dict[str, Any]) -> Any:
        """Offer `event` to this router's handlers, then to its sub-routers; UNHANDLED if none took it."""
        observer = self.observers[observer_name]

        def inside(event: Any, data: dict[str, Any]) -> Any:
            result = observer.trigger(event, data)
            if result is not UNHANDLED:
                return result
            for sub in self.sub_routers:
                result = sub.propagate(observer_name, event, data)
                if result is not UNHANDLED:
                    return result
            return UNHANDLED

        return _wrap(observer.outer_middlewares, inside)(event, {**data, "router": self})


class Dispatcher(Router):
    """The root router: parses and feeds events. Extra keyword data reaches middlewares and
    handlers (e.g. the stored event id, a client to answer with)."""

    def feed_bot_update(self, update: BotUpdate, **data: Any) -> Any:
        return self.propagate("message", update, {"dispatcher": self, **data})

    def feed_oa_event(self, event: OAEvent, **data: Any) -> Any:
        return self.propagate("oa_event", event, {"dispatcher": self, **data})

    def feed_raw(self, provider: Provider, body: bytes | str | dict[str, Any], **data: Any) -> Any:
        """Parse a raw body as stored by the webhooks (wrapped or bare) and feed it."""
        payload = json.loads(body) if isinstance(body, bytes | str) else body
        if provider == "zalo_bot":
            return self.feed_bot_update(parse_bot_update(payload), **data)
        return self.feed_oa_event(parse_oa_event(payload), **data)
