"""Phone numbers at rest: Fernet encryption plus a keyed hash for equality look-ups.

Both keys are derived with HKDF under different labels, so neither derived key can be computed
from the other: the encryption key from SIPAS_SECRET_KEY, the hash key from SIPAS_HASH_KEY, or
from SIPAS_SECRET_KEY when that is not set (one secret configures a new service).

The hash key is not rotated with the encryption key. Some rows hold only a hash (a refusal whose
number was purged, kept so that the refusal is honoured for good): no one can recompute it under
another key. So `sipas keys rotate` (docs/operations.md) re-encrypts under the new
SIPAS_SECRET_KEY, with the previous ones in SIPAS_OLD_SECRET_KEYS readable until it is done, and
leaves every hash as it is, provided SIPAS_HASH_KEY holds the secret the hashes were made with.
Without SIPAS_HASH_KEY the hashes follow SIPAS_SECRET_KEY and must be recomputed from plaintexts
(what has none is lost): the command refuses that unless told to.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

if TYPE_CHECKING:
    from config.settings import Settings

__all__ = ["DecryptionError", "KeyedSha256", "PhoneVault"]


class DecryptionError(ValueError):
    """Ciphertext was written under another SIPAS_SECRET_KEY or is corrupt."""


def _derive(secret: str, label: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"sipas-bot", info=label).derive(
        secret.encode("utf-8")
    )


def _fernet_key(secret: str) -> bytes:
    """The 32 bytes of a secret's Fernet key: the signing key, then the AES-128 key."""
    return _derive(secret, b"phone-encryption")


def _fernet(secret: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(_fernet_key(secret)))


_BLOCK = 16


class KeyedSha256:
    """HMAC-SHA256 under one key (RFC 2104, the values of hmac.new), the key's inner and outer
    hash states computed once and copied per message: 2.2 µs a message against 7.2 µs for
    hmac.digest, which sets OpenSSL's HMAC up again on every call (measured on this project's
    machine). An import hashes and MACs every phone (and draws its sample, flows.intake)."""

    def __init__(self, key: bytes) -> None:
        block = hashlib.sha256().block_size
        padded = (hashlib.sha256(key).digest() if len(key) > block else key).ljust(block, b"\0")
        self._inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in padded))
        self._outer = hashlib.sha256(bytes(byte ^ 0x5C for byte in padded))

    def digest(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


def _xor(left: bytes, right: bytes) -> bytes:
    return (int.from_bytes(left, "big") ^ int.from_bytes(right, "big")).to_bytes(len(left), "big")


def _fernet_tokens(signing: KeyedSha256, encryption_key: bytes, plaintexts: Sequence[bytes]) -> list[str]:
    """Fernet tokens of `plaintexts` (the format of cryptography's Fernet.encrypt, byte for byte:
    version 0x80, timestamp, random IV, AES-128-CBC with PKCS7 padding, HMAC-SHA256), made for a
    whole batch at once. Fernet builds a cipher object per value, which was most of the 6-10 µs a
    phone cost in a bulk import; here CBC is done with one AES-ECB call per block position across
    the batch (CBC's block i is ECB of plaintext block i XOR the previous ciphertext block, or
    the IV), so a batch of phones (one block each) is one ECB call. tests/test_crypto_batch.py
    checks that Fernet reads these tokens."""
    padded = [
        text + bytes([_BLOCK - len(text) % _BLOCK]) * (_BLOCK - len(text) % _BLOCK) for text in plaintexts
    ]
    ivs = os.urandom(_BLOCK * len(padded))
    chains = [ivs[n * _BLOCK : (n + 1) * _BLOCK] for n in range(len(padded))]
    ciphertexts = [b""] * len(padded)
    # ECB is only the AES block function here: this function does the CBC chaining itself.
    ecb = Cipher(algorithms.AES(encryption_key), modes.ECB()).encryptor()  # noqa: S305
    position = 0
    while pending := [n for n, text in enumerate(padded) if len(text) > position]:
        blocks = b"".join(padded[n][position : position + _BLOCK] for n in pending)
        encrypted = ecb.update(_xor(blocks, b"".join(chains[n] for n in pending)))
        for index, n in enumerate(pending):
            chains[n] = encrypted[index * _BLOCK : (index + 1) * _BLOCK]
            ciphertexts[n] += chains[n]
        position += _BLOCK
    head = b"\x80" + int(time.time()).to_bytes(8, "big")
    tokens = []
    for n, ciphertext in enumerate(ciphertexts):
        parts = head + ivs[n * _BLOCK : (n + 1) * _BLOCK] + ciphertext
        tokens.append(base64.urlsafe_b64encode(parts + signing.digest(parts)).decode("ascii"))
    return tokens


class PhoneVault:
    """Encrypts, decrypts and hashes personal identifiers (phone numbers, Zalo ids).

    `old_secrets`: previous SIPAS_SECRET_KEYs, used only to read what they encrypted (and, when
    the hashes follow the secret, for the rotation to recognise the hashes they made).
    `hash_secret`: SIPAS_HASH_KEY; empty: the hashes are keyed by `secret`."""

    def __init__(self, secret: str, old_secrets: Sequence[str] = (), hash_secret: str = "") -> None:
        if len(secret) < 16:
            raise ValueError("SIPAS_SECRET_KEY must be at least 16 characters")
        self._current = _fernet(secret)
        key = _fernet_key(secret)
        self._signing, self._encryption_key = KeyedSha256(key[:_BLOCK]), key[_BLOCK:]
        self._fernet = MultiFernet([self._current, *(_fernet(old) for old in old_secrets if old != secret)])
        self._hash_key = KeyedSha256(_derive(hash_secret or secret, b"phone-lookup-hash"))
        self.hashes_follow_secret = not hash_secret
        followed = old_secrets if self.hashes_follow_secret else ()
        self._old_hash_keys = [
            KeyedSha256(_derive(old, b"phone-lookup-hash")) for old in followed if old != secret
        ]

    @classmethod
    def from_settings(cls, settings: Settings) -> PhoneVault:
        """The vault of SIPAS_SECRET_KEY, SIPAS_OLD_SECRET_KEYS and SIPAS_HASH_KEY."""
        return cls(settings.SIPAS_SECRET_KEY, settings.old_secret_keys, settings.SIPAS_HASH_KEY)

    def encrypt(self, value: str) -> str:
        return self._current.encrypt(value.encode("utf-8")).decode("ascii")

    def encrypt_many(self, values: Sequence[str]) -> list[str]:
        """Each value encrypted under the current secret, the same Fernet tokens as `encrypt`,
        for a batch of short values (an import's phones and Zalo ids): 3 µs a phone against
        6-10 µs through Fernet. One value alone, or a long one (a webhook payload: one AES call
        per 16 bytes here), is cheaper through `encrypt` (13 µs against 39 µs for a phone alone,
        14 against 84 µs for 200 bytes, measured)."""
        return _fernet_tokens(
            self._signing, self._encryption_key, [value.encode("utf-8") for value in values]
        )

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except InvalidToken as exc:
            raise DecryptionError("cannot decrypt: wrong SIPAS_SECRET_KEY or corrupt value") from exc

    def is_current(self, token: str) -> bool:
        """Whether `token` is encrypted under the current secret (nothing left to rotate)."""
        try:
            self._current.decrypt(token.encode("ascii"))
        except InvalidToken:
            return False
        return True

    def reencrypt(self, token: str) -> str:
        """`token` encrypted under the current secret (same plaintext)."""
        return self.encrypt(self.decrypt(token))

    def lookup_hash(self, value: str) -> str:
        """Deterministic keyed hash: equal inputs give equal hashes, without revealing the input."""
        return self._hash_key.digest(value.encode("utf-8")).hex()

    def old_lookup_hashes(self, value: str) -> list[str]:
        """The hashes the old secrets gave `value` (to re-key rows that hold only a hash)."""
        return [key.digest(value.encode("utf-8")).hex() for key in self._old_hash_keys]
