"""Phone numbers at rest: Fernet encryption plus a keyed hash for equality look-ups.

Both keys are derived from SIPAS_SECRET_KEY with HKDF under different labels, so one
secret configures the service and neither derived key can be computed from the other.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["DecryptionError", "PhoneVault"]


class DecryptionError(ValueError):
    """Ciphertext was written under another SIPAS_SECRET_KEY or is corrupt."""


def _derive(secret: str, label: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"sipas-bot", info=label).derive(
        secret.encode("utf-8")
    )


class PhoneVault:
    """Encrypts, decrypts and hashes personal identifiers (phone numbers, Zalo ids)."""

    def __init__(self, secret: str) -> None:
        if len(secret) < 16:
            raise ValueError("SIPAS_SECRET_KEY must be at least 16 characters")
        self._fernet = Fernet(base64.urlsafe_b64encode(_derive(secret, b"phone-encryption")))
        self._hash_key = _derive(secret, b"phone-lookup-hash")

    def encrypt(self, value: str) -> str:
        return self._fernet.encrypt(value.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except InvalidToken as exc:
            raise DecryptionError("cannot decrypt: wrong SIPAS_SECRET_KEY or corrupt value") from exc

    def lookup_hash(self, value: str) -> str:
        """Deterministic keyed hash: equal inputs give equal hashes, without revealing the input."""
        return hmac.new(self._hash_key, value.encode("utf-8"), hashlib.sha256).hexdigest()
