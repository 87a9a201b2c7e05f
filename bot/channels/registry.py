"""Every channel provider, by name: which routes the web app mounts, which parser reads a stored
MO, which sender the send job uses.

- All providers' webhooks are mounted (`ROUTE_MODULES`, bot.app: the SMS providers and the two
  Zalo ones, bot/channels/zalo_bot and zalo_oa), whichever SMS provider sends: delivery
  reports for messages sent before a switch still arrive, and a provider whose secrets are not set
  refuses its callbacks (503 not_configured) instead of accepting them.
- A stored event is parsed by the provider that stored it (`provider(event.provider)`), never by
  the current setting.
- `sms_sender(settings)` builds the sender SIPAS_SMS_PROVIDER names; `check(settings)` stops a
  starting process with one line when the name is unknown.

The Zalo providers' events are read by the Zalo router of the inbound job (workers/zalo_inbound.py)
and sent by the send job's Zalo clients, so only their routes and names are listed here.

Adding a provider: its package under bot/channels/, then its name in `ROUTE_MODULES` (docs/channels.md).
"""

from __future__ import annotations

from types import ModuleType

from bot.channels import brandname, kannel, zalo_bot, zalo_oa
from bot.channels.sms import SmsProvider, SmsSender
from config.settings import MissingSettingError, Settings

__all__ = ["PROVIDERS", "ROUTE_MODULES", "SMS_MODULES", "check", "provider", "sms_sender"]

# Each package exposes NAME (InboundEvent.provider of its events) and `routes` (its aiohttp
# RouteTableDef), so the packages themselves are route modules for bot.app (and
# tests/test_openapi.py checks the spec); an SMS package also PROVIDER (an SmsProvider).
SMS_MODULES: tuple[ModuleType, ...] = (kannel, brandname)
ROUTE_MODULES: tuple[ModuleType, ...] = (*SMS_MODULES, zalo_bot, zalo_oa)
PROVIDERS: dict[str, SmsProvider] = {package.PROVIDER.name: package.PROVIDER for package in SMS_MODULES}


def provider(name: str) -> SmsProvider | None:
    """The SMS provider that stores events under `name` (InboundEvent.provider), if any."""
    return PROVIDERS.get(name)


def check(settings: Settings) -> SmsProvider:
    """The provider SIPAS_SMS_PROVIDER selects; an unknown name stops the process with one line."""
    selected = PROVIDERS.get(settings.SIPAS_SMS_PROVIDER)
    if selected is None:
        raise MissingSettingError(
            f"SIPAS_SMS_PROVIDER={settings.SIPAS_SMS_PROVIDER!r} is not one of {', '.join(PROVIDERS)}"
        )
    return selected


def sms_sender(settings: Settings) -> SmsSender:
    """The sender of the selected provider (raises MissingSettingError for what it lacks)."""
    return check(settings).sender(settings)
