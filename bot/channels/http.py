"""The pooled HTTP client of the SMS senders (kannel/, brandname/): one aiohttp.ClientSession per
sender, opened on its first send, on the send job's event loop, and closed with the sender.

aiohttp rather than httpx because the send drain spends most of its CPU here: on the same local
server, an httpx.AsyncClient GET took about ten times the CPU of an aiohttp one with 50 requests
in flight (docs/benchmarks.md). The Zalo clients stay on httpx (bot/channels/zalo).

Timeouts: a connection (including the wait for a free one in the pool) within 5 s at most, the
whole request within SIPAS_SEND_TIMEOUT, which config.settings keeps shorter than the send lease.
"""

from __future__ import annotations

import asyncio

import aiohttp

__all__ = ["CONNECTIONS", "TRANSPORT_ERRORS", "never_sent", "open_session"]

CONNECTIONS = 20  # keep-alive connections to one provider per worker process
TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError)  # no answer to read


def open_session(timeout: float) -> aiohttp.ClientSession:
    """A session for one provider (call on the loop that will use it)."""
    session = aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=timeout, connect=min(timeout, 5.0)),
        connector=aiohttp.TCPConnector(limit=CONNECTIONS),
    )
    # aiohttp sends an idempotent request (Kannel's GET sendsms) a second time when a reused
    # keep-alive connection drops before the answer (RFC 9112 9.3.1). The gateway may have taken
    # the first one, and a send is not idempotent: it must surface as ambiguous instead, never be
    # repeated (tests/channels/test_sms_http.py holds this; aiohttp has no public switch).
    session._retry_connection = False
    return session


def never_sent(exc: BaseException) -> bool:
    """True when a transport failure happened before the request left (refused, no address, no
    connection in time): trying again cannot send the message twice. Any other failure (a read
    timeout, a dropped connection) may have come after the provider took it."""
    return isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)
