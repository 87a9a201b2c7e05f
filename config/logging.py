"""Structured JSON logs (structlog) that never carry a phone number in clear."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

# Vietnamese mobile numbers in any common form: 0912345678, 84912345678, +84 912 345 678.
_PHONE = re.compile(r"(?<!\d)(?:\+?84|0)[\s.-]?\d{2,3}(?:[\s.-]?\d){6,7}(?!\d)")


def mask_phones(text: str) -> str:
    """Replace every phone-like number with its last three digits only."""
    return _PHONE.sub(lambda m: "***" + re.sub(r"\D", "", m.group())[-3:], text)


def _redact(_logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(event_dict.items()):
        if isinstance(value, str):
            event_dict[key] = mask_phones(value)
    return event_dict


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stderr for our loggers and for the libraries' standard logging."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
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
