"""How a provider package describes itself to the registry: each exports `PROVIDER`, a `Provider`.

A provider reads its own stored events (`parse_stored`: an SMS provider's MO into
bot.channels.sms.InboundSms, a Zalo event into bot.channels.zalo.events.InboundRecord) and builds
its own sender (`sender`); which routes and channel it serves tells the send job which sender
takes a row. Nothing here knows a survey: an adapter knows its provider.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from aiohttp import web

from bot.channels.outgoing import Sender, SendServices
from storage.models import Channel, Route

__all__ = ["Provider"]

Inbound = TypeVar("Inbound")  # the neutral reading of the provider's stored events


@dataclass(frozen=True)
class Provider(Generic[Inbound]):
    name: str  # InboundEvent.provider of its events (and SIPAS_SMS_PROVIDER's value for SMS)
    channel: Channel
    serves: tuple[Route, ...]  # the outbox routes its sender takes
    routes: web.RouteTableDef  # its webhooks, mounted by bot.app
    parse_stored: Callable[[str], Inbound]  # a stored event as its webhook read it (raises ValueError)
    sender: Callable[[SendServices], Sender]  # raises MissingSettingError naming what is not set
