"""What every provider's send speaks, whatever the channel: one outbox row in (`Outgoing`), and
either `Sent` back or a `SendError` that says what the outbox should do with the row.

A provider's send module maps its own failures onto SendError's flags (its table is in its
docstring: bot/channels/<provider>/send.py); the send job (workers/gateways.py, workers/sending.py)
reads only the flags, never a provider's codes:

- `retryable`: trying again later can help (timeouts, 5xx, 429, a connection refused);
- `ambiguous`: the request went out and its answer was lost, so the provider may have taken it;
  without an idempotency key sending again could send it twice: the outbox keeps the row
  `unknown` and never resends it by itself;
- `unreachable`: this recipient can never be reached on this channel (Zalo: no account, blocked,
  not a follower): the survey moves to SMS at once;
- `retry_after`: seconds the provider asked us to wait (HTTP 429 Retry-After, Zalo's -32);
- `code`: the provider's own error code, kept for the operator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from redis import Redis
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from storage.crypto import PhoneVault
from storage.models import Route

__all__ = ["Outgoing", "SendError", "SendServices", "Sender", "Sent"]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One claimed outbox row, decrypted, ready for its provider."""

    message_id: int  # our outbox id: the `ref` a provider echoes in its delivery reports
    survey_id: int | None
    route: Route
    to: str  # E.164 phone (SMS, ZNS), OA user id, or bot chat id
    text: str
    payload: dict[str, Any] | None = None  # route-specific data (the ZNS template and its fields)


@dataclass(frozen=True, slots=True)
class Sent:
    """The provider took the message."""

    provider_id: str  # its id of the message (or ours of this attempt), for correlation
    segments: int  # SMS billed; 1 on Zalo
    coding: str  # gsm7 / ucs2 for SMS; "text" or "template" on Zalo


class SendError(Exception):
    """The provider did not take the message; the flags (module docstring) say what happens next."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        ambiguous: bool = False,
        unreachable: bool = False,
        retry_after: float | None = None,
        code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.ambiguous = ambiguous
        self.unreachable = unreachable
        self.retry_after = retry_after
        self.code = code


class Sender(Protocol):
    """A provider's send side, built by its `Provider.sender` for one worker process and used on
    one event loop: it keeps its HTTP connections between sends, so a batch of hundreds reuses a
    few keep-alive connections."""

    async def send(self, message: Outgoing) -> Sent:
        """Hand one message to the provider; every failure is a SendError."""

    async def aclose(self) -> None:
        """Release the connections (on the loop the sends ran on)."""


class SendServices(Protocol):
    """What a sender may be built from: the settings, and for a provider that keeps state (the
    Zalo OA's OAuth tokens) the database, the vault and Redis. The worker's Runtime is one."""

    @property
    def settings(self) -> Settings: ...

    @property
    def sessions(self) -> sessionmaker[Session]: ...

    @property
    def vault(self) -> PhoneVault: ...

    @property
    def redis(self) -> Redis: ...
