"""Reading request bodies from outside safely: under a hard size limit, and JSON that cannot
exhaust the parser (nesting depth) or smuggle characters no storage takes (NUL, lone surrogates).

Every refusal is a RefusedError with a 4xx: bad input is never a 500, and never a 503 (which
tells a provider to retry what can never succeed).
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from bot.errors import RefusedError

# Real bodies nest 3-5 levels (a Zalo event, a batch of cases). Python's json recurses per level
# and fails with RecursionError near 1,000: anything deeper than this is refused before parsing.
MAX_JSON_DEPTH = 32

_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
# NUL cannot be stored in a PostgreSQL text column; a lone surrogate (from a `\ud800` escape)
# cannot be encoded as UTF-8. Neither is ever part of a real event or case.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


async def read_limited(request: web.Request, max_bytes: int, too_large: RefusedError) -> bytes:
    """The body, or `too_large` raised as soon as it is known to exceed `max_bytes`: by its
    Content-Length, else while reading (a chunked body has none), never more than max_bytes + 1."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(max_bytes + 1 - size):
        size += len(chunk)
        if size > max_bytes:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def nesting_exceeds(text: str, limit: int) -> bool:
    """Whether the JSON text opens more than `limit` arrays/objects inside each other (strings,
    which may hold brackets, are skipped). Linear, without recursion."""
    skeleton = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    depth = 0
    for bracket in skeleton:
        depth += 1 if bracket in "[{" else -1
        if depth > limit:
            return True
    return False


def has_unstorable(text: str) -> bool:
    """Whether a decoded string holds NUL or a lone surrogate."""
    return _UNSTORABLE.search(text) is not None


def _check_strings(value: Any) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if has_unstorable(item):
                raise RefusedError(
                    400, "bad_characters", "strings must not contain NUL or unpaired surrogate escapes"
                )
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def decode_json(body: bytes, max_depth: int = MAX_JSON_DEPTH) -> tuple[str, Any]:
    """(text, value) of a UTF-8 JSON body, or a 400: not UTF-8, nested deeper than `max_depth`,
    not JSON (NaN and Infinity included: they are not JSON), or holding unstorable characters."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RefusedError(400, "bad_encoding", "the body is not UTF-8") from None
    if nesting_exceeds(text, max_depth):
        raise RefusedError(400, "too_deep", f"JSON may nest at most {max_depth} levels")
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise RefusedError(400, "malformed_json", "the body is not valid JSON") from None
    _check_strings(value)
    return text, value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
