"""Phone numbers at rest: Fernet encryption plus a keyed hash for equality look-ups.

Both keys are derived from SIPAS_SECRET_KEY with HKDF under different labels, so one
secret configures the service and neither derived key can be computed from the other.

Key rotation (`sipas keys rotate`, docs/operations.md): the new secret becomes SIPAS_SECRET_KEY
and the previous ones are listed in SIPAS_OLD_SECRET_KEYS. New values are encrypted and hashed
under the new secret only; values encrypted under an old secret stay readable until the rotation
has re-encrypted them and recomputed their hashes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["DecryptionError", "PhoneVault"]


class DecryptionError(ValueError):
    """Ciphertext was written under another SIPAS_SECRET_KEY or is corrupt."""


def _derive(secret: str, label: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"sipas-bot", info=label).derive(
        secret.encode("utf-8")
    )


def _fernet(secret: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(_derive(secret, b"phone-encryption")))


class PhoneVault:
    """Encrypts, decrypts and hashes personal identifiers (phone numbers, Zalo ids).

    `old_secrets`: previous SIPAS_SECRET_KEYs, used only to read what they encrypted (and, for
    the rotation, to recognise the hashes they made)."""

    def __init__(self, secret: str, old_secrets: Sequence[str] = ()) -> None:
        if len(secret) < 16:
            raise ValueError("SIPAS_SECRET_KEY must be at least 16 characters")
        self._current = _fernet(secret)
        self._fernet = MultiFernet([self._current, *(_fernet(old) for old in old_secrets if old != secret)])
        self._hash_key = _derive(secret, b"phone-lookup-hash")
        self._old_hash_keys = [_derive(old, b"phone-lookup-hash") for old in old_secrets if old != secret]

    def encrypt(self, value: str) -> str:
        return self._current.encrypt(value.encode("utf-8")).decode("ascii")

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
        return hmac.new(self._hash_key, value.encode("utf-8"), hashlib.sha256).hexdigest()

    def old_lookup_hashes(self, value: str) -> list[str]:
        """The hashes the old secrets gave `value` (to re-key rows that hold only a hash)."""
        return [
            hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest() for key in self._old_hash_keys
        ]
