"""Which channel a survey starts on, and where it goes when that channel fails, per agency.

The rules live in a small YAML file (SIPAS_CHANNELS_FILE, shipped as config/agencies/channels.yaml)
rather than in the agency table, because they are a deployment decision that follows the
agency's Zalo set-up (an OA, a bot, an approved ZNS template), not registry data from the
one-stop system. An agency without an entry inherits its parent's rule, then `default`: a
province can switch all its wards to Zalo first with one line. docs/zalo.md ("Channel choice")
is the reference.

Route choice for a new case (`choose_start`):

- the citizen asked for SMS and gave a phone          -> SMS
- an OA user id is known and (the citizen asked for Zalo, or gave no phone, or the rule is
  zalo_first)                                          -> Zalo, Official Account conversation
- zalo_first, a phone, and a ZNS rating template       -> Zalo, ZNS rating by phone (first contact)
- otherwise                                            -> SMS
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from storage.models import Agency, Channel, Route

__all__ = [
    "DEFAULT_FLOWS",
    "ChannelPolicy",
    "ChannelRules",
    "ChannelRulesError",
    "Fallback",
    "Strategy",
    "choose_start",
    "load_rules",
    "policy_for",
]

DEFAULT_FLOWS: Mapping[Channel, str] = {Channel.SMS: "sipas-sms", Channel.ZALO: "sipas-zalo"}
# Zalo refuses OA customer-service messages 7 days after the citizen's last interaction.
MAX_OA_WINDOW_HOURS = 7 * 24


class Strategy(enum.StrEnum):
    SMS_FIRST = "sms_first"  # SMS; Zalo only when the case says so (or has no phone)
    ZALO_FIRST = "zalo_first"  # Zalo whenever we can reach the citizen there


class Fallback(enum.StrEnum):
    SMS = "sms"  # a Zalo failure moves the survey to SMS (once), when the case has a phone
    NONE = "none"  # a Zalo failure ends the survey as failed


class ChannelRulesError(ValueError):
    """The channel rules file cannot be used; the message names the file and the problem."""


class ChannelPolicy(BaseModel):
    """The effective rule for one agency."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    strategy: Strategy = Strategy.SMS_FIRST
    fallback: Fallback = Fallback.SMS
    # OA messages are free 48 h after the citizen's last interaction, billable up to 7 days:
    # 48 keeps an agency on the free window (later messages fall back), 168 uses it all.
    oa_window_hours: int = Field(default=MAX_OA_WINDOW_HOURS, ge=1, le=MAX_OA_WINDOW_HOURS)
    sms_flow: str = Field(default=DEFAULT_FLOWS[Channel.SMS], pattern=r"^[a-z][a-z0-9_-]{0,63}$")
    zalo_flow: str = Field(default=DEFAULT_FLOWS[Channel.ZALO], pattern=r"^[a-z][a-z0-9_-]{0,63}$")

    def flow_for(self, channel: Channel) -> str:
        return self.zalo_flow if channel is Channel.ZALO else self.sms_flow


class ChannelRules(BaseModel):
    """The whole file: `default` plus per-agency overrides (only the fields they name)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    default: ChannelPolicy = ChannelPolicy()
    agencies: dict[str, dict[str, Any]] = Field(default_factory=dict)

    def for_chain(self, codes_root_first: list[str]) -> ChannelPolicy:
        merged: dict[str, Any] = self.default.model_dump()
        for code in codes_root_first:
            merged.update(self.agencies.get(code) or {})
        return ChannelPolicy.model_validate(merged)


def _check_overrides(rules: ChannelRules, path: Path) -> None:
    """Each agency entry must itself be a valid (partial) policy: typos fail at load, not at 3 a.m."""
    for code, override in rules.agencies.items():
        if not isinstance(override, dict):
            raise ChannelRulesError(f"{path}: agencies.{code} must be a mapping of fields")
        try:
            ChannelPolicy.model_validate({**rules.default.model_dump(), **override})
        except ValidationError as exc:
            raise ChannelRulesError(f"{path}: agencies.{code}: {exc}") from exc


@lru_cache(maxsize=8)
def _load(path: Path, _mtime: float) -> ChannelRules:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ChannelRulesError(f"{path}: cannot read channel rules: {exc}") from exc
    if not isinstance(data, dict):
        raise ChannelRulesError(f"{path}: the channel rules file must be a YAML mapping")
    data = {**data, "agencies": data.get("agencies") or {}}
    try:
        rules = ChannelRules.model_validate(data)
    except ValidationError as exc:
        raise ChannelRulesError(f"{path}: invalid channel rules: {exc}") from exc
    _check_overrides(rules, path)
    return rules


def load_rules(path: Path) -> ChannelRules:
    """The rules in `path` (defaults when the file does not exist). Re-read when the file changes,
    so an operator's edit reaches running workers without a restart."""
    try:
        mtime = os.stat(path).st_mtime
    except FileNotFoundError:
        return ChannelRules()
    return _load(path, mtime)


def policy_for(rules: ChannelRules, agency: Agency) -> ChannelPolicy:
    """The agency's effective rule: its own entry over its ancestors' over `default`."""
    chain: list[str] = []
    current: Agency | None = agency
    while current is not None and current.code not in chain:
        chain.append(current.code)
        current = current.parent
    return rules.for_chain(list(reversed(chain)))


def choose_start(
    policy: ChannelPolicy,
    *,
    has_phone: bool,
    has_oa_user: bool,
    preference: Channel | None,
    zns_ready: bool,
) -> tuple[Channel, Route | None]:
    """(channel, Zalo route or None) a new survey starts on; see the module docstring."""
    if preference is Channel.SMS and has_phone:
        return Channel.SMS, None
    zalo_first = policy.strategy is Strategy.ZALO_FIRST
    if has_oa_user and (preference is Channel.ZALO or not has_phone or zalo_first):
        return Channel.ZALO, Route.ZALO_OA
    if zalo_first and has_phone and zns_ready:
        return Channel.ZALO, Route.ZNS
    return Channel.SMS, None
