"""Process settings, read from the environment and `.env` (names fixed by the contract)."""

from __future__ import annotations

import re
from datetime import time
from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VAR_DIR = PROJECT_ROOT / "var"
DEFAULT_DATABASE_URL = f"sqlite:///{VAR_DIR / 'sipas.db'}"

_WINDOW = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")


def parse_send_window(value: str) -> tuple[time, time | None]:
    """A send window `HH:MM-HH:MM` as (start, end) local times; end None means midnight (24:00).
    The one parser of SIPAS_SEND_WINDOW and of the per-agency rule (flows.rules)."""
    match = _WINDOW.match(value)
    if not match:
        raise ValueError("a send window must look like 07:30-21:00")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if not (0 <= h1 <= 23 and 0 <= m1 <= 59 and 0 <= h2 <= 24 and 0 <= m2 <= 59):
        raise ValueError("the send window has an impossible time")
    if (h2, m2) > (24, 0) or (h1, m1) >= (h2, m2):
        raise ValueError("the send window must start before it ends, within one day")
    return time(h1, m1), None if (h2, m2) == (24, 0) else time(h2, m2)


# Shared secrets that authenticate callers (webhooks): outside development each one that is set
# must be at least this long, so that a guessable one-word secret stops the process at start.
MIN_WEBHOOK_SECRET_LENGTH = 16
WEBHOOK_SECRETS = (
    "ONESTOP_WEBHOOK_SECRET",
    "KANNEL_MO_TOKEN",
    "ZALO_BOT_SECRET_TOKEN",
    "BRANDNAME_CALLBACK_SECRET",
)


class MissingSettingError(RuntimeError):
    """A setting that the starting process needs is empty; the message names it."""


class Settings(BaseSettings):
    """Every knob of the service. Field names are the environment variable names."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # `production` (default) enforces strong secrets; `development` (make run, demo) relaxes that.
    SIPAS_ENV: Literal["production", "development"] = "production"
    DATABASE_URL: str = DEFAULT_DATABASE_URL
    REDIS_URL: str = "redis://127.0.0.1:6379/0"
    SIPAS_SECRET_KEY: str = ""
    # Comma-separated previous SIPAS_SECRET_KEYs, still readable while `sipas keys rotate` runs.
    SIPAS_OLD_SECRET_KEYS: str = ""
    # Keys the look-up hashes of numbers and Zalo ids; never rotated (storage.crypto says why).
    # Empty: derived from SIPAS_SECRET_KEY (set it to that key's value before the first rotation).
    SIPAS_HASH_KEY: str = ""
    ONESTOP_WEBHOOK_SECRET: str = ""

    # Which SMS provider sends (bot.channels.registry: kannel, brandname); every provider's
    # webhooks stay mounted, so reports for messages sent before a switch still arrive.
    SIPAS_SMS_PROVIDER: str = "kannel"
    KANNEL_SENDSMS_URL: str = "http://127.0.0.1:13013/cgi-bin/sendsms"
    KANNEL_USERNAME: str = ""
    KANNEL_PASSWORD: str = ""
    KANNEL_MO_TOKEN: str = ""
    SMS_SENDER: str = "8040"
    # The brandname-SMS HTTP API (bot/channels/brandname, docs/channels.md): send URL, API key,
    # and the secret that signs its delivery and MO callbacks. The default URL is the simulator.
    BRANDNAME_API_URL: str = "http://127.0.0.1:13014/v1/sms"
    BRANDNAME_API_KEY: str = ""
    BRANDNAME_CALLBACK_SECRET: str = ""

    ZALO_BOT_TOKEN: str = ""
    ZALO_BOT_SECRET_TOKEN: str = ""
    ZALO_BOT_API_BASE: str = "https://bot-api.zaloplatforms.com"
    ZALO_OA_APP_ID: str = ""
    ZALO_OA_SECRET_KEY: str = ""
    ZALO_APP_SECRET: str = ""
    # Which secret signs OA webhook events (X-ZEvent-Signature): the OA secret key (documented)
    # or the app secret (what some integrations report).
    ZALO_OA_SIGNATURE_KEY: Literal["oa_secret", "app_secret"] = "oa_secret"
    ZALO_OA_API_BASE: str = "https://openapi.zalo.me"
    ZALO_OAUTH_BASE: str = "https://oauth.zaloapp.com"
    ZNS_API_BASE: str = "https://business.openapi.zalo.me"
    ZNS_RATING_TEMPLATE_ID: str = ""
    # Per-agency channel rules (Zalo first or SMS, fallback, flows): docs/zalo.md, "Channel choice".
    SIPAS_CHANNELS_FILE: Path = PROJECT_ROOT / "config" / "agencies" / "channels.yaml"

    SIPAS_TIMEZONE: str = "Asia/Ho_Chi_Minh"
    SIPAS_SEND_WINDOW: str = "07:30-21:00"
    SIPAS_FIRST_MESSAGE_DELAY: int = Field(default=0, ge=0)
    SIPAS_REMINDER_AFTER: int = Field(default=24 * 3600, ge=1)
    SIPAS_SURVEY_TTL: int = Field(default=72 * 3600, ge=1)
    SIPAS_FREQUENCY_CAP_DAYS: int = Field(default=30, ge=0)
    SIPAS_MIN_RESPONSES: int = Field(default=30, ge=1)
    SIPAS_RETENTION_DAYS: int = Field(default=90, ge=1)
    SIPAS_SWEEP_INTERVAL: int = Field(default=5, ge=1)
    # Stored work whose job has not run this long is assumed lost and enqueued again.
    SIPAS_RECOVERY_GRACE: int = Field(default=30, ge=1)
    # A send claimed this long ago without a result belongs to a dead worker (> HTTP timeout).
    SIPAS_SEND_LEASE: int = Field(default=120, ge=5)
    # Seconds a gateway may take to answer one send (the HTTP timeout); the lease must be longer.
    SIPAS_SEND_TIMEOUT: int = Field(default=15, ge=1)
    # Cost caps (workers.caps): messages sent per survey and per phone in an hour, and inbound
    # events acted on per sender in a minute (the rest are stored, not acted on).
    SIPAS_MAX_SENDS_PER_SURVEY_HOUR: int = Field(default=12, ge=1)
    SIPAS_MAX_SENDS_PER_PHONE_HOUR: int = Field(default=12, ge=1)
    SIPAS_MAX_INBOUND_PER_SENDER_MINUTE: int = Field(default=20, ge=1)
    # An inbound event whose processing failed this often is set aside (`sipas dead-letters`).
    SIPAS_MAX_EVENT_ATTEMPTS: int = Field(default=5, ge=1)
    # Drain jobs (workers.drain): rows per transaction, and messages per second per provider.
    SIPAS_BATCH_SIZE: int = Field(default=200, ge=1, le=5000)
    SIPAS_SMS_RATE: float = Field(default=200.0, gt=0)
    SIPAS_ZALO_RATE: float = Field(default=50.0, gt=0)
    # Leak guard of `sipas worker`: a clean restart after this many jobs or this much RSS (MB).
    SIPAS_WORKER_MAX_JOBS: int = Field(default=2000, ge=1)
    SIPAS_WORKER_MAX_MEMORY_MB: int = Field(default=250, ge=50)

    HOST: str = "127.0.0.1"
    PORT: int = 8080
    SIPAS_PUBLIC_URL: str = ""
    # Supervisors' digest e-mails (workers/digest): empty SMTP_HOST sends no e-mail.
    SMTP_HOST: str = ""
    SMTP_PORT: int = 587
    SMTP_USERNAME: str = ""
    SMTP_PASSWORD: str = ""
    SMTP_FROM: str = ""
    SMTP_STARTTLS: bool = True
    LOG_LEVEL: str = "INFO"
    # /metrics answers only `Authorization: Bearer <token>`; empty: /metrics is not served on
    # the web port (serve it on SIPAS_METRICS_PORT instead, or both).
    SIPAS_METRICS_TOKEN: str = ""
    # When set (non-zero), `sipas web` also serves /metrics, without a token, on this port of
    # SIPAS_METRICS_HOST (a private interface, scraped by Prometheus).
    SIPAS_METRICS_PORT: int = Field(default=0, ge=0, le=65535)
    SIPAS_METRICS_HOST: str = "127.0.0.1"
    # `make run` only: the stand-in SMS gateway's port and the embedded Redis server's port.
    SIPAS_DEV_GATEWAY_PORT: int = Field(default=13013, ge=1, le=65535)
    SIPAS_DEV_REDIS_PORT: int = Field(default=6390, ge=1, le=65535)

    @field_validator("SIPAS_SEND_WINDOW")
    @classmethod
    def _check_window(cls, value: str) -> str:
        parse_send_window(value)
        return value

    @field_validator("SIPAS_SECRET_KEY", "SIPAS_HASH_KEY")
    @classmethod
    def _check_secret(cls, value: str) -> str:
        if value and len(value) < 16:
            raise ValueError("must be at least 16 characters (it keys how phone numbers are kept)")
        return value

    @model_validator(mode="after")
    def _check_send_lease(self) -> Settings:
        """A claim must outlive the longest send, or a slow answer would look like a dead worker."""
        if self.SIPAS_SEND_LEASE <= self.SIPAS_SEND_TIMEOUT:
            raise ValueError(
                f"SIPAS_SEND_LEASE ({self.SIPAS_SEND_LEASE}) must be longer than "
                f"SIPAS_SEND_TIMEOUT ({self.SIPAS_SEND_TIMEOUT})"
            )
        return self

    @model_validator(mode="after")
    def _check_strong_secrets(self) -> Settings:
        """Outside development every webhook secret that is set must be hard to guess."""
        if self.SIPAS_ENV == "development":
            return self
        weak = [n for n in WEBHOOK_SECRETS if 0 < len(getattr(self, n)) < MIN_WEBHOOK_SECRET_LENGTH]
        if self.SIPAS_METRICS_TOKEN and len(self.SIPAS_METRICS_TOKEN) < MIN_WEBHOOK_SECRET_LENGTH:
            weak.append("SIPAS_METRICS_TOKEN")
        if weak:
            raise ValueError(
                f"{', '.join(weak)} must be at least {MIN_WEBHOOK_SECRET_LENGTH} characters "
                "outside SIPAS_ENV=development (generate one: python3 -c "
                "'import secrets; print(secrets.token_urlsafe(24))')"
            )
        return self

    @property
    def old_secret_keys(self) -> list[str]:
        """SIPAS_OLD_SECRET_KEYS as a list (empty entries ignored)."""
        return [key.strip() for key in self.SIPAS_OLD_SECRET_KEYS.split(",") if key.strip()]

    @field_validator("SIPAS_TIMEZONE")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        ZoneInfo(value)
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.SIPAS_TIMEZONE)

    @property
    def send_window(self) -> tuple[time, time | None]:
        """(start, end) in local time; end None means midnight (a window ending at 24:00)."""
        return parse_send_window(self.SIPAS_SEND_WINDOW)

    @property
    def public_url(self) -> str:
        return (self.SIPAS_PUBLIC_URL or f"http://{self.HOST}:{self.PORT}").rstrip("/")

    def require(self, *names: str) -> None:
        """Stop a starting process with one clear line naming the first empty setting it needs."""
        for name in names:
            if not getattr(self, name):
                raise MissingSettingError(
                    f"setting {name} is required but empty (set it in the environment or .env)"
                )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests build their own `Settings(...)` instead."""
    return Settings()
