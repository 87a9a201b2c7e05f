"""Accounts of the people who log in to the pages: create, list, disable, change passwords, log in.

Passwords are hashed with argon2id (argon2-cffi's defaults, RFC 9106 low-memory profile); a hash
made with older parameters is upgraded at the next good log-in. Repeated wrong passwords lock
the account for a while (LOCKOUT_AFTER, LOCKOUT_FOR); an unknown username costs the same hashing
time as a known one so the answer time does not tell which usernames exist.

Every change goes to the audit log (storage.audit) in the same transaction, without the hash.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from storage import audit
from storage.models import Agency, User, UserRole

__all__ = [
    "LANGUAGES",
    "LOCKOUT_AFTER",
    "LOCKOUT_FOR",
    "MIN_PASSWORD_LENGTH",
    "LoginOutcome",
    "LoginResult",
    "UserError",
    "add_user",
    "all_users",
    "authenticate",
    "disable_user",
    "get_user",
    "hash_password",
    "set_password",
    "subtree_ids",
]

LOCKOUT_AFTER = 5  # wrong passwords in a row that lock an account
LOCKOUT_FOR = timedelta(minutes=15)
MIN_PASSWORD_LENGTH = 10
LANGUAGES = ("vi", "en")
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")

_hasher = PasswordHasher()
# Verified against when the username is unknown, so that case takes as long as a wrong password.
_DUMMY_HASH = _hasher.hash("not-a-real-password-0000")


class UserError(ValueError):
    """A request about accounts that cannot be done; the message says why, for the person asking."""


class LoginOutcome(StrEnum):
    OK = "ok"
    WRONG = "wrong"  # unknown username or wrong password (never told apart to the person)
    LOCKED = "locked"
    DISABLED = "disabled"


@dataclass(frozen=True)
class LoginResult:
    outcome: LoginOutcome
    user: User | None = None


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    return _hasher.hash(password)


def get_user(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == username.strip().lower()))


def all_users(session: Session, agency_ids: set[int] | None = None) -> Sequence[User]:
    """Every account (or those attached to `agency_ids`), by username."""
    query = select(User).order_by(User.username)
    if agency_ids is not None:
        query = query.where(User.agency_id.in_(agency_ids))
    return session.scalars(query).all()


def subtree_ids(session: Session, root_id: int | None) -> set[int] | None:
    """Ids of an agency and every unit below it; None (no limit) for None, an admin's scope."""
    if root_id is None:
        return None
    parents: dict[int, int | None] = {
        row[0]: row[1] for row in session.execute(select(Agency.id, Agency.parent_id))
    }
    keep = {root_id}
    grew = True
    while grew:
        grew = False
        for agency_id, parent_id in parents.items():
            if parent_id in keep and agency_id not in keep:
                keep.add(agency_id)
                grew = True
    return keep


def _describe(user: User) -> dict[str, object]:
    """What the audit log records about an account (never the password hash)."""
    return {
        "username": user.username,
        "role": user.role.value,
        "agency": user.agency.code if user.agency is not None else None,
        "email": user.email,
        "zalo_user_id": user.zalo_user_id,
        "language": user.language,
        "disabled": user.disabled,
    }


def add_user(
    session: Session,
    *,
    actor: str,
    username: str,
    role: UserRole,
    agency: Agency | None,
    password: str,
    email: str | None = None,
    zalo_user_id: str | None = None,
    language: str = "vi",
) -> User:
    """Create an account. Staff and supervisors need an agency (their scope); an admin without
    one sees the whole registry."""
    name = username.strip().lower()
    if not _USERNAME.match(name):
        raise UserError(
            "a username is 2-64 characters: lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    if agency is None and role is not UserRole.ADMIN:
        raise UserError(f"a {role.value} account needs an agency (--agency CODE)")
    if language not in LANGUAGES:
        raise UserError(f"language must be one of {', '.join(LANGUAGES)}")
    if email is not None and "@" not in email:
        raise UserError(f"{email!r} is not an e-mail address")
    if get_user(session, name) is not None:
        raise UserError(f"an account named {name!r} already exists")
    user = User(
        username=name,
        role=role,
        agency=agency,
        agency_id=agency.id if agency is not None else None,
        email=email or None,
        zalo_user_id=zalo_user_id or None,
        language=language,
        password_hash=hash_password(password),
        disabled=False,
        failed_logins=0,
    )
    session.add(user)
    session.flush()
    audit.append(session, actor, "users.add", f"user:{name}", None, _describe(user), agency_id=user.agency_id)
    return user


def _existing(session: Session, username: str) -> User:
    user = get_user(session, username)
    if user is None:
        raise UserError(f"no account named {username!r}")
    return user


def disable_user(session: Session, *, actor: str, username: str) -> User:
    """Disable an account: it cannot log in, and its open sessions stop working at their next
    request (bot.web.sessions checks the account on every request)."""
    user = _existing(session, username)
    if user.disabled:
        return user
    before = _describe(user)
    user.disabled = True
    session.flush()
    audit.append(
        session, actor, "users.disable", f"user:{user.username}", before, _describe(user),
        agency_id=user.agency_id,
    )  # fmt: skip
    return user


def set_password(session: Session, *, actor: str, username: str, password: str) -> User:
    """Replace an account's password and lift a lock-out; sessions made with the old password
    stop working (they carry a fingerprint of the hash)."""
    user = _existing(session, username)
    user.password_hash = hash_password(password)
    user.failed_logins = 0
    user.locked_until = None
    session.flush()
    audit.append(
        session, actor, "users.set_password", f"user:{user.username}", None, {"password": "changed"},
        agency_id=user.agency_id,
    )  # fmt: skip
    return user


def authenticate(session: Session, username: str, password: str, now: datetime | None = None) -> LoginResult:
    """Check a log-in and record its outcome on the account (counters, lock-out, last log-in).
    The caller commits: a wrong password must be counted even though the log-in fails."""
    moment = now or datetime.now(UTC)
    user = get_user(session, username) if username.strip() else None
    if user is None:
        _verify(_DUMMY_HASH, password)
        return LoginResult(LoginOutcome.WRONG)
    if user.locked_until is not None and user.locked_until > moment:
        _verify(_DUMMY_HASH, password)  # no oracle for the right password while locked
        return LoginResult(LoginOutcome.LOCKED, user)
    if not _verify(user.password_hash, password):
        user.failed_logins += 1
        if user.failed_logins >= LOCKOUT_AFTER:
            user.locked_until = moment + LOCKOUT_FOR
            user.failed_logins = 0
            session.flush()
            return LoginResult(LoginOutcome.LOCKED, user)
        session.flush()
        return LoginResult(LoginOutcome.WRONG, user)
    if user.disabled:
        return LoginResult(LoginOutcome.DISABLED, user)
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = moment
    session.flush()
    return LoginResult(LoginOutcome.OK, user)


def _verify(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False
