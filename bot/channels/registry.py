"""Every SMS provider, by name: which routes the web app mounts, which parser reads a stored MO,
which sender the send job uses.

- All providers' webhooks are mounted (`ROUTE_MODULES`, bot.app), whichever one sends: delivery
  reports for messages sent before a switch still arrive, and a provider whose secrets are not set
  refuses its callbacks (503 not_configured) instead of accepting them.
- A stored event is parsed by the provider that stored it (`provider(event.provider)`), never by
  the current setting.
- `sms_sender(settings)` builds the sender SIPAS_SMS_PROVIDER names; `check(settings)` stops a
  starting process with one line when the name is unknown.

Adding a provider: its package under bot/channels/, then its name in `ROUTE_MODULES` (docs/channels.md).
"""

from __future__ import annotations

from types import ModuleType

from bot.channels import brandname, kannel
from bot.channels.sms import SmsProvider, SmsSender
from config.settings import MissingSettingError, Settings

__all__ = ["PROVIDERS", "ROUTE_MODULES", "check", "provider", "sms_sender"]

# Each package exposes PROVIDER (an SmsProvider) and `routes` (its aiohttp RouteTableDef), so the
# packages themselves are route modules for bot.app (and tests/test_openapi.py checks the spec).
ROUTE_MODULES: tuple[ModuleType, ...] = (kannel, brandname)
PROVIDERS: dict[str, SmsProvider] = {package.PROVIDER.name: package.PROVIDER for package in ROUTE_MODULES}


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
