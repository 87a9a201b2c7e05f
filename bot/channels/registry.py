"""Every channel provider, by name: which routes the web app mounts, which parser reads a stored
event, which sender takes an outbox row. Each provider package exports `PROVIDER`
(bot.channels.provider.Provider); this module only lists them.

- All providers' webhooks are mounted (`ROUTE_MODULES`, bot.app), whichever SMS provider sends:
  delivery reports for messages sent before a switch still arrive, and a provider whose secrets
  are not set refuses its callbacks (503 not_configured) instead of accepting them.
- A stored event is read by the provider that stored it (`PROVIDERS[event.provider]`), never by
  the current setting.
- A row's sender is the provider serving its route (`for_route`); SMS rows go to the provider
  SIPAS_SMS_PROVIDER names, and `check(settings)` stops a starting process with one line when the
  name is unknown.

Adding a provider: its package under bot/channels/, then its package in `ROUTE_MODULES` below
(docs/channels.md).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from bot.channels import brandname, kannel, zalo_bot, zalo_oa
from bot.channels.provider import Provider
from bot.channels.sms import InboundSms
from bot.channels.zalo.events import InboundRecord
from config.settings import MissingSettingError, Settings
from storage.models import Channel, Route

__all__ = ["PROVIDERS", "ROUTE_MODULES", "SMS", "ZALO", "check", "for_route", "provider"]

# The provider packages, each exporting `routes` (its webhooks, which bot.app mounts and
# tests/test_openapi.py checks against the spec) and PROVIDER.
ROUTE_MODULES: tuple[ModuleType, ...] = (kannel, brandname, zalo_bot, zalo_oa)
PROVIDERS: dict[str, Provider[Any]] = {module.PROVIDER.name: module.PROVIDER for module in ROUTE_MODULES}
SMS: dict[str, Provider[InboundSms]] = {
    name: sms for name, sms in PROVIDERS.items() if sms.channel is Channel.SMS
}
ZALO: dict[str, Provider[InboundRecord]] = {
    name: zalo for name, zalo in PROVIDERS.items() if zalo.channel is Channel.ZALO
}
_BY_ROUTE: dict[Route, Provider[InboundRecord]] = {
    route: zalo for zalo in ZALO.values() for route in zalo.serves
}


def provider(name: str) -> Provider[InboundSms] | None:
    """The SMS provider that stores events under `name` (InboundEvent.provider), if any."""
    return SMS.get(name)


def check(settings: Settings) -> Provider[InboundSms]:
    """The provider SIPAS_SMS_PROVIDER selects; an unknown name stops the process with one line."""
    selected = SMS.get(settings.SIPAS_SMS_PROVIDER)
    if selected is None:
        raise MissingSettingError(
            f"SIPAS_SMS_PROVIDER={settings.SIPAS_SMS_PROVIDER!r} is not one of {', '.join(SMS)}"
        )
    return selected


def for_route(route: Route, settings: Settings) -> Provider[Any]:
    """The provider whose sender takes rows on `route`: SMS by SIPAS_SMS_PROVIDER (raises
    MissingSettingError for an unknown name), a Zalo route by the one provider serving it."""
    if route is Route.SMS:
        return check(settings)
    return _BY_ROUTE[route]
