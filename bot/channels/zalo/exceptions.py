"""Typed errors from the Zalo envelopes, so callers decide by type, not by magic numbers.

The Bot API answers `{ok, result, error_code, description}` (error_code mirrors the HTTP status);
the OA and ZNS APIs answer HTTP 200 with `{error, message, data}` where a non-zero `error` is the
failure. Both are mapped here onto one small hierarchy:

- ZaloTokenInvalid: the access token is expired or wrong; refresh it and retry once.
- ZaloRateLimited: slow down and retry later.
- ZaloUnreachable: this person cannot be reached on Zalo (no account, not a follower, outside the
  interaction window...): do not retry, fall back to another channel.
- ZaloServerError: 5xx, Zalo not reachable, unreadable answers: retry later.
- ZaloAnswerLost (a ZaloServerError): the request went out but its answer was lost (read
  timeout, connection dropped): Zalo may have taken it, so a send must not be repeated by itself.
- ZaloPermanentError: anything else; retrying the same request will not help.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

__all__ = [
    "OA_RATE_LIMIT_CODES",
    "OA_TOKEN_INVALID_CODES",
    "UNREACHABLE_CODES",
    "ZaloAnswerLost",
    "ZaloError",
    "ZaloPermanentError",
    "ZaloRateLimited",
    "ZaloServerError",
    "ZaloTokenInvalid",
    "ZaloTokenRefreshError",
    "ZaloUnreachable",
    "raise_for_bot_envelope",
    "raise_for_oa_envelope",
    "transport_failure",
]

OA_TOKEN_INVALID_CODES = frozenset({-216, -220, -124})
OA_RATE_LIMIT_CODES = frozenset({-32})
# "Cannot reach this person on Zalo": invalid phone, no Zalo account, inactive or refused ZNS,
# refused by the user, not a follower, no interaction within the allowed window.
UNREACHABLE_CODES = frozenset({-108, -118, -114, -119, -139, -141, -213, -230})


class ZaloError(Exception):
    """Base of every Zalo failure. `code` is the provider's error code (or HTTP status)."""

    retryable: bool = False

    def __init__(self, description: str, *, code: int | None = None, method: str | None = None) -> None:
        self.description = description
        self.code = code
        self.method = method
        where = f"{method}: " if method else ""
        suffix = f" (code {code})" if code is not None else ""
        super().__init__(f"{where}{description}{suffix}")


class ZaloTokenInvalid(ZaloError):  # noqa: N818 (names read as the condition)
    """The access token is expired, revoked or wrong (OA -216/-220/-124, Bot API 401)."""

    retryable = True


class ZaloRateLimited(ZaloError):  # noqa: N818 (names read as the condition)
    """Too many requests (OA -32, HTTP 429): back off before the next call."""

    retryable = True

    def __init__(
        self,
        description: str,
        *,
        code: int | None = None,
        method: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(description, code=code, method=method)
        self.retry_after = retry_after


class ZaloUnreachable(ZaloError):  # noqa: N818 (names read as the condition)
    """This person cannot be reached on this Zalo channel: move the survey to another channel."""


class ZaloServerError(ZaloError):
    """Zalo failed or could not be reached (5xx, timeout, garbled answer): retry later."""

    retryable = True


class ZaloAnswerLost(ZaloServerError):  # noqa: N818 (names read as the condition)
    """The request left but no answer came back (read timeout, dropped connection): Zalo may
    have taken it and no Zalo send API takes an idempotency key, so sending it again could
    deliver it twice. Harmless to retry for reads; the outbox keeps such a send `unknown`."""


def transport_failure(exc: Exception, what: str, method: str | None) -> ZaloServerError:
    """The typed error of an httpx failure: before the request left (connect refused or timed
    out, no free connection) it is a plain ZaloServerError, safe to retry; after, ZaloAnswerLost."""
    name = type(exc).__name__
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return ZaloServerError(f"{what} unreachable: {name}", method=method)
    return ZaloAnswerLost(f"{what}'s answer was lost: {name}", method=method)


class ZaloPermanentError(ZaloError):
    """A refusal that the same request will meet again (bad parameters, unknown method, ...)."""


class ZaloTokenRefreshError(ZaloPermanentError):
    """The OAuth server refused the refresh token: an operator must authorise the OA again."""


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    if not headers:
        return None
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _by_http_status(status: int, description: str, method: str | None, retry_after: float | None) -> None:
    """Errors that the HTTP status alone decides, before looking at the body."""
    if status == 401:
        raise ZaloTokenInvalid(description, code=status, method=method)
    if status == 429:
        raise ZaloRateLimited(description, code=status, method=method, retry_after=retry_after)
    if status >= 500:
        raise ZaloServerError(description, code=status, method=method)


def raise_for_bot_envelope(
    status: int,
    body: Any,
    *,
    method: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Any:
    """Return `result` of a Bot API answer, or raise the typed error it describes.

    The Bot API's `error_code` repeats HTTP semantics: 401 wrong token, 403 not allowed to write
    to this chat, 429 too many requests. 408 (long-poll timeout) is not an error for getUpdates;
    the caller handles it before calling this.
    """
    retry_after = _retry_after(headers)
    if not isinstance(body, Mapping):
        _by_http_status(status, f"unreadable answer (HTTP {status})", method, retry_after)
        raise ZaloServerError(f"answer is not a JSON object (HTTP {status})", code=status, method=method)
    if body.get("ok") is True and status < 400:
        return body.get("result")
    raw_code = body.get("error_code", status)
    code = raw_code if isinstance(raw_code, int) else status
    description = str(body.get("description") or f"request failed (HTTP {status})")
    _by_http_status(code, description, method, retry_after)
    _by_http_status(status, description, method, retry_after)
    if code == 403:
        raise ZaloUnreachable(description, code=code, method=method)
    if code == 408:
        raise ZaloServerError(description, code=code, method=method)
    raise ZaloPermanentError(description, code=code, method=method)


def raise_for_oa_envelope(
    status: int,
    body: Any,
    *,
    method: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Any:
    """Return `data` of an OA/ZNS answer (`{error: 0, message, data}`), or raise its typed error."""
    retry_after = _retry_after(headers)
    if not isinstance(body, Mapping) or "error" not in body:
        _by_http_status(status, f"unreadable answer (HTTP {status})", method, retry_after)
        raise ZaloServerError(f"answer has no `error` field (HTTP {status})", code=status, method=method)
    try:
        code = int(body["error"])
    except (TypeError, ValueError):
        raise ZaloServerError(f"non-numeric error {body['error']!r}", code=status, method=method) from None
    description = str(body.get("message") or f"error {code}")
    if code == 0 and status < 400:
        return body.get("data")
    if code in OA_TOKEN_INVALID_CODES:
        raise ZaloTokenInvalid(description, code=code, method=method)
    if code in OA_RATE_LIMIT_CODES:
        raise ZaloRateLimited(description, code=code, method=method, retry_after=retry_after)
    if code in UNREACHABLE_CODES:
        raise ZaloUnreachable(description, code=code, method=method)
    _by_http_status(status, description, method, retry_after)
    raise ZaloPermanentError(description, code=code, method=method)
