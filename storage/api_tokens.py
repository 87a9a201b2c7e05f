"""Bearer tokens of the scores API: created (shown once), listed, revoked, checked.

Only the SHA-256 of a token is stored: the token is 256 random bits, so a fast hash is enough
(no password to stretch) and a stolen database yields no usable token. Each token is scoped to
one agency and everything below it. Creations and revocations go to the audit log.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage import audit
from storage.agencies import get_by_code
from storage.models import Agency, ApiToken

__all__ = ["TOKEN_PREFIX", "ApiTokenError", "add_token", "all_tokens", "check_token", "revoke_token"]

TOKEN_PREFIX = "sipas_"  # noqa: S105 - a marker that makes leaked tokens easy to find, not a secret
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class ApiTokenError(ValueError):
    """A token request that cannot be done; the message says why."""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def add_token(session: Session, name: str, agency_code: str, actor: str) -> str:
    """Create a token for `agency_code`'s subtree; returns the token itself (shown once)."""
    if not _NAME.match(name):
        raise ApiTokenError("a token name is 1-64 letters, digits, '.', '_' or '-'")
    agency = get_by_code(session, agency_code)
    if agency is None:
        raise ApiTokenError(f"no agency with code {agency_code!r}")
    if session.scalar(select(ApiToken.id).where(ApiToken.name == name)) is not None:
        raise ApiTokenError(f"a token named {name!r} exists already (revoke it or choose another name)")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(name=name, agency_id=agency.id, token_hash=token_hash(token)))
    session.flush()
    audit.append(
        session,
        actor,
        "api_tokens.add",
        f"api_token:{name}",
        None,
        {"agency": agency.code},
        agency_id=agency.id,
    )
    return token


def all_tokens(session: Session) -> Sequence[tuple[ApiToken, str]]:
    """Every token with its agency code, by name (hashes are never shown)."""
    rows = session.execute(select(ApiToken, Agency.code).join(Agency).order_by(ApiToken.name)).all()
    return [(token, code) for token, code in rows]


def revoke_token(session: Session, name: str, actor: str) -> None:
    token = session.scalar(select(ApiToken).where(ApiToken.name == name))
    if token is None:
        raise ApiTokenError(f"no token named {name!r}")
    if token.revoked_at is not None:
        raise ApiTokenError(f"token {name!r} is already revoked")
    token.revoked_at = datetime.now(UTC)
    session.flush()
    audit.append(
        session,
        actor,
        "api_tokens.revoke",
        f"api_token:{name}",
        {"revoked": False},
        {"revoked": True},
        agency_id=token.agency_id,
    )


def check_token(session: Session, presented: str) -> ApiToken | None:
    """The live token matching `presented`, or None. Looked up by hash, then compared in
    constant time; records when it was last used."""
    digest = token_hash(presented)
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
    if token is None or token.revoked_at is not None or not hmac.compare_digest(token.token_hash, digest):
        return None
    token.last_used_at = datetime.now(UTC)
    return token
