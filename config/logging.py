"""Structured JSON logs (structlog) that never carry a phone number or a credential in clear.

Masking is the last step before a line is written, after tracebacks are formatted, so it covers
every field of every record that reaches our handler: our own events, libraries' log lines (httpx
logs each request URL at INFO: Kannel's `password=`, a dlr-url's `token=`, a Zalo bot token in
the path) and exception texts.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

# Vietnamese mobile numbers in any common form: 0912345678, 84912345678, +84 912 345 678.
_PHONE = re.compile(r"(?<!\d)(?:\+?84|0)[\s.-]?\d{2,3}(?:[\s.-]?\d){6,7}(?!\d)")


# A credential-bearing parameter, plain or percent-encoded inside another URL (a dlr-url inside
# Kannel's sendsms query: `%26token%3D...`), or a JSON/Python mapping entry: the name is kept, the
# value masked. Values end at a separator, or at an encoded `&` (%26).
_SECRET_NAME = r"[A-Za-z0-9_.-]*(?:password|passwd|pwd|token|secret|api[_-]?key|signature)[A-Za-z0-9_-]*"  # noqa: S105 (a pattern of names)
_SECRET_PARAM = re.compile(
    rf"(?i)(?<![A-Za-z0-9])({_SECRET_NAME})(=|%3D)((?:%(?!26)[0-9A-Fa-f]{{2}}|[^&\s\"'#%,;<>)])*)"
)
_SECRET_ITEM = re.compile(rf"(?i)(['\"]{_SECRET_NAME}['\"]\s*:\s*['\"])([^'\"]*)")
# user:password@ in any scheme://... (database, Redis, HTTP URLs); the user name is kept.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/@\s:]*):[^/@\s]*@")
# The Zalo Bot Platform puts the bot token in the path: <base>/bot<TOKEN>/<method>.
_BOT_PATH = re.compile(r"(?<![/:])/bot[^/\s?#]+/")
MASK = "***"


def mask_phones(text: str) -> str:
    """Replace every phone-like number with its last three digits only."""
    return _PHONE.sub(lambda m: "***" + re.sub(r"\D", "", m.group())[-3:], text)


def mask_secrets(text: str) -> str:
    """Replace credentials in URLs and key/value text (passwords, tokens, secrets, userinfo,
    bot tokens in paths) by `***`; everything else is kept so the line still says what happened."""
    text = _SECRET_PARAM.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    text = _SECRET_ITEM.sub(lambda m: f"{m.group(1)}{MASK}", text)
    text = _USERINFO.sub(lambda m: f"{m.group(1)}:{MASK}@", text)
    return _BOT_PATH.sub(f"/bot{MASK}/", text)


def mask(text: str) -> str:
    """Everything a log line must not carry: credentials, then phone numbers."""
    return mask_phones(mask_secrets(text))


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {key: _masked(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(item) for item in value]
    if isinstance(value, int | float | bool) or value is None:
        return value
    return mask(str(value))  # URLs, exceptions and other objects are rendered as their text


def _redact(_logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(event_dict.items()):
        event_dict[key] = _masked(value)
    return event_dict


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stderr for our loggers and for the libraries' standard logging."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        # filter_by_level first: an event below the logger's level costs one level check, not the
        # shared processors' work (the worker logs each event at INFO; deployments run at WARNING).
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _redact,  # last: tracebacks are text by now, so they are masked too
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # RQ logs every job it runs at INFO (the sweep alone every few seconds): keep its routine
    # lines out of the service's logs unless we are debugging.
    logging.getLogger("rq").setLevel(rq_log_level(level))


def rq_log_level(level: str) -> str:
    """The level for RQ's own loggers given the service's LOG_LEVEL."""
    return level.upper() if level.upper() == "DEBUG" else "WARNING"
