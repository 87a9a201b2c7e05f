"""`sipas keys rotate`: re-encrypt everything under a new SIPAS_SECRET_KEY while the old key stays
readable (SIPAS_OLD_SECRET_KEYS) until it is done.

Steps (docs/operations.md, "Rotating SIPAS_SECRET_KEY"): put the new key in SIPAS_SECRET_KEY and
the old one in SIPAS_OLD_SECRET_KEYS, restart the processes, run `sipas keys rotate`, then remove
the old key. The command can be interrupted and run again: rows already under the new key are
skipped, each batch is its own transaction.

The look-up hashes are keyed by SIPAS_HASH_KEY, which is not rotated (storage.crypto says why):
the command checks that it gives the stored hashes, re-encrypts, and leaves every hash as it is.
Only without SIPAS_HASH_KEY (hashes keyed by SIPAS_SECRET_KEY), and with --rekey-hashes, are the
hashes recomputed under the new key, as follows.

Hashes are recomputed from the plaintext they hash: numbers and Zalo ids held encrypted (cases,
surveys, inbox, staff numbers registered since migration 0014, and the raw requests of inbound
events). Rows that hold ONLY a hash (opt-outs, staff numbers registered before) are re-keyed
through the same plaintexts: an old hash maps to the new hash of the number that produced it. A
hash whose number is no longer held anywhere (its contact data was purged) cannot be re-keyed;
the command counts these and keeps them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import click
from sqlalchemy import func, select
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from bot.channels import registry
from config.settings import get_settings
from storage.crypto import DecryptionError, PhoneVault
from storage.db import session_factory
from storage.models import (
    Base,
    Case,
    Channel,
    InboundEvent,
    InboxMessage,
    OptOut,
    OutboundMessage,
    StaffPhone,
    Survey,
    ZaloOAToken,
)

BATCH = 500
PURGED = ""

# Every encrypted column (storage.models: `*_enc`).
ENCRYPTED: tuple[InstrumentedAttribute[Any], ...] = (
    Case.phone_enc,
    Case.zalo_user_id_enc,
    Survey.zalo_chat_enc,
    OutboundMessage.recipient_enc,
    InboundEvent.payload_enc,
    InboxMessage.sender_enc,
    StaffPhone.phone_enc,
    ZaloOAToken.access_token_enc,
    ZaloOAToken.refresh_token_enc,
)


@dataclass
class Rotation:
    """What the rotation did, and the old-hash -> new-hash map it builds from plaintexts."""

    reencrypted: int = 0
    rehashed: int = 0
    not_rekeyable: int = 0
    rekey: dict[str, str] = field(default_factory=dict)

    def learn(self, vault: PhoneVault, plaintext: str) -> str:
        """The new hash of `plaintext`; remembers which old hashes stand for it."""
        new = vault.lookup_hash(plaintext)
        for old in vault.old_lookup_hashes(plaintext):
            self.rekey[old] = new
        return new

    def as_json(self) -> dict[str, int]:
        return {
            "reencrypted": self.reencrypted,
            "rehashed": self.rehashed,
            "hashes_not_rekeyable": self.not_rekeyable,
        }


def _batches(sessions: sessionmaker[Session], model: type[Base]) -> Iterator[tuple[Session, list[Any]]]:
    """(session, rows) of `model` by id, BATCH at a time, each batch in its own transaction
    (committed when the caller moves on), so an interrupted rotation keeps what it did."""
    last = 0
    ident: Any = model.id  # type: ignore[attr-defined]
    while True:
        with sessions() as session, session.begin():
            rows: list[Any] = list(
                session.scalars(select(model).where(ident > last).order_by(ident).limit(BATCH))
            )
            if not rows:
                return
            yield session, rows
            last = rows[-1].id


def _reencrypt(vault: PhoneVault, row: Any, column: str, rotation: Rotation) -> str | None:
    """Re-encrypt one column value under the current key; its plaintext (None if empty)."""
    token = getattr(row, column)
    if not token:
        return None
    plaintext = vault.decrypt(token)
    if not vault.is_current(token):
        setattr(row, column, vault.encrypt(plaintext))
        rotation.reencrypted += 1
    return plaintext


def _set_hash(row: Any, column: str, new: str | None, rotation: Rotation) -> None:
    if new is not None and getattr(row, column) not in (None, new):
        setattr(row, column, new)
        rotation.rehashed += 1


def _event_sender(provider: str, kind: str, payload: str) -> str | None:
    """Who sent a stored raw request, read by the provider that stored it, as its webhook read
    it (to recompute sender_hash). An SMS delivery report has no sender."""
    stored_by = registry.PROVIDERS.get(provider)
    if stored_by is None or (stored_by.channel is Channel.SMS and kind != "mo"):
        return None
    try:
        sender: str | None = stored_by.parse_stored(payload).sender
    except ValueError:  # InboundRequestError, NotAnEventError, a payload that is not JSON
        return None
    return sender


def _rotate_row(vault: PhoneVault, row: Any, rotation: Rotation) -> None:
    if isinstance(row, Case):
        phone = _reencrypt(vault, row, "phone_enc", rotation)
        _set_hash(row, "phone_hash", rotation.learn(vault, phone) if phone else None, rotation)
        zalo = _reencrypt(vault, row, "zalo_user_id_enc", rotation)
        _set_hash(row, "zalo_user_hash", rotation.learn(vault, zalo) if zalo else None, rotation)
    elif isinstance(row, Survey):
        chat = _reencrypt(vault, row, "zalo_chat_enc", rotation)
        _set_hash(row, "zalo_chat_hash", rotation.learn(vault, chat) if chat else None, rotation)
    elif isinstance(row, OutboundMessage):
        _reencrypt(vault, row, "recipient_enc", rotation)
    elif isinstance(row, InboundEvent):
        payload = _reencrypt(vault, row, "payload_enc", rotation)
        sender = _event_sender(row.provider, row.kind, payload) if payload else None
        _set_hash(row, "sender_hash", rotation.learn(vault, sender) if sender else None, rotation)
    elif isinstance(row, InboxMessage):
        sender = _reencrypt(vault, row, "sender_enc", rotation)
        _set_hash(row, "sender_hash", rotation.learn(vault, sender) if sender else None, rotation)
    elif isinstance(row, StaffPhone):
        phone = _reencrypt(vault, row, "phone_enc", rotation)
        _set_hash(row, "phone_hash", rotation.learn(vault, phone) if phone else None, rotation)
    elif isinstance(row, ZaloOAToken):
        _reencrypt(vault, row, "access_token_enc", rotation)
        _reencrypt(vault, row, "refresh_token_enc", rotation)


# Rows with plaintext first (they teach the old -> new hash map), hash-only rows after.
_WITH_PLAINTEXT: tuple[type[Base], ...] = (
    Case,
    Survey,
    OutboundMessage,
    InboundEvent,
    InboxMessage,
    StaffPhone,
    ZaloOAToken,
)


def count_rows(session: Session) -> int:
    models: tuple[type[Base], ...] = (*_WITH_PLAINTEXT, OptOut)
    rows = sum(int(session.scalar(select(func.count()).select_from(model)) or 0) for model in models)
    hash_only = select(func.count()).select_from(StaffPhone).where(StaffPhone.phone_enc.is_(None))
    return rows + int(session.scalar(hash_only) or 0)


def rotate(
    sessions: sessionmaker[Session], vault: PhoneVault, advance: Callable[[int], None] = lambda _n: None
) -> Rotation:
    """Re-encrypt and re-hash every row (see the module docstring); `advance(n)` after each batch."""
    rotation = Rotation()
    for model in _WITH_PLAINTEXT:
        for _session, batch in _batches(sessions, model):
            for row in batch:
                _rotate_row(vault, row, rotation)
            advance(len(batch))
    if not vault.hashes_follow_secret:
        return rotation  # hashes keyed by SIPAS_HASH_KEY: every one is still right
    with sessions() as session, session.begin():
        for survey in session.scalars(select(Survey).where(Survey.phone_hash.is_not(None))):
            _set_hash(survey, "phone_hash", rotation.rekey.get(survey.phone_hash or ""), rotation)
    current = set(rotation.rekey.values())
    with sessions() as session, session.begin():
        refusals = list(session.scalars(select(OptOut)))
        for refusal in refusals:
            new = rotation.rekey.get(refusal.phone_hash)
            if new is not None:
                if session.get(OptOut, new) is None:
                    session.add(
                        OptOut(
                            phone_hash=new,
                            source=refusal.source,
                            created_at=refusal.created_at,
                            rejoin_requested_at=refusal.rejoin_requested_at,
                        )
                    )
                session.delete(refusal)
                rotation.rehashed += 1
            elif new is None and refusal.phone_hash not in current:
                rotation.not_rekeyable += 1
        advance(len(refusals))
    with sessions() as session, session.begin():
        # Numbers registered before they were kept encrypted (the others were re-keyed above).
        staff = list(session.scalars(select(StaffPhone).where(StaffPhone.phone_enc.is_(None))))
        for phone in staff:
            new = rotation.rekey.get(phone.phone_hash)
            if new is not None:
                _set_hash(phone, "phone_hash", new, rotation)
            elif phone.phone_hash not in current:
                rotation.not_rekeyable += 1
        advance(len(staff))
    return rotation


@click.group("keys")
def keys() -> None:
    """SIPAS_SECRET_KEY: rotate it."""


def hash_key_mismatches(session: Session, vault: PhoneVault, sample: int = 200) -> int:
    """How many of a sample of cases hold a phone hash that the vault's hash key does not give
    their number: a SIPAS_HASH_KEY other than the one the hashes were made with."""
    rows = session.execute(
        select(Case.phone_enc, Case.phone_hash)
        .where(Case.phone_enc.is_not(None), Case.phone_hash.is_not(None))
        .order_by(Case.id.desc())
        .limit(sample)
    ).all()
    wrong = 0
    for phone_enc, phone_hash in rows:
        try:
            wrong += vault.lookup_hash(vault.decrypt(phone_enc or "")) != phone_hash
        except DecryptionError:
            continue  # the rotation itself names a value no configured key reads
    return wrong


@keys.command("rotate")
@click.option(
    "--rekey-hashes",
    is_flag=True,
    help="Without SIPAS_HASH_KEY: recompute the look-up hashes under the new key too, losing the "
    "refusals whose number is held nowhere any more.",
)
def rotate_command(rekey_hashes: bool) -> None:
    """Re-encrypt everything under SIPAS_SECRET_KEY (old keys: SIPAS_OLD_SECRET_KEYS); the
    look-up hashes stay under SIPAS_HASH_KEY."""
    settings = get_settings()
    settings.require("SIPAS_SECRET_KEY", "SIPAS_OLD_SECRET_KEYS")
    vault = PhoneVault.from_settings(settings)
    if vault.hashes_follow_secret and not rekey_hashes:
        raise click.ClickException(
            "SIPAS_HASH_KEY is not set, so the look-up hashes follow SIPAS_SECRET_KEY and would have to "
            "be recomputed: a refusal whose number was purged cannot be, and would be forgotten. Set "
            "SIPAS_HASH_KEY to the key the hashes were made with (the previous SIPAS_SECRET_KEY) for "
            "every process, restart, and run again (docs/operations.md); or pass --rekey-hashes"
        )
    sessions = session_factory(settings.DATABASE_URL)
    with sessions() as session:
        if not vault.hashes_follow_secret and (wrong := hash_key_mismatches(session, vault)):
            raise click.ClickException(
                f"SIPAS_HASH_KEY does not give the stored look-up hashes ({wrong} of the latest cases "
                "checked differ): set it to the key they were made with; nothing was changed"
            )
        total = count_rows(session)
    try:
        with click.progressbar(length=total, label="re-encrypting", file=sys.stderr) as bar:

            def advance(rows: int) -> None:
                bar.update(rows)

            result = rotate(sessions, vault, advance)
    except DecryptionError:
        raise click.ClickException(
            "a value cannot be decrypted with SIPAS_SECRET_KEY nor SIPAS_OLD_SECRET_KEYS: add the key "
            "it was written with to SIPAS_OLD_SECRET_KEYS and run again (rows done so far are kept)"
        ) from None
    click.echo(json.dumps(result.as_json()))
    if result.not_rekeyable:
        click.echo(
            f"{result.not_rekeyable} opt-out or staff hashes could not be re-keyed: their numbers are no "
            "longer held (purged). Re-import staff phones; see docs/operations.md.",
            err=True,
        )


COMMANDS = [keys]
