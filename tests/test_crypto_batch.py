"""PhoneVault.encrypt_many writes Fernet tokens itself (storage.crypto._fernet_tokens, a batch at a time):
cryptography's Fernet must read every one of them, and the vault every token Fernet writes,
since other code and older rows hold Fernet tokens; the keyed hashes (lookup hash, sampling
draw) keep their values."""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import time

from cryptography.fernet import Fernet

from flows.intake import sampling_draw
from storage.crypto import PhoneVault, _derive

SECRET = "test-secret-key-0123456789abcdef"
FERNET = Fernet(base64.urlsafe_b64encode(_derive(SECRET, b"phone-encryption")))


def samples() -> list[str]:
    """Phones, Zalo ids and every length across a few AES blocks, non-ASCII included."""
    rng = random.Random(7)
    texts = ["", "+84912345678", "4572914123456789012", "Nguyễn Văn A", "x" * 16, "y" * 32]
    texts += ["".join(rng.choice("0123456789ạbcđ+") for _ in range(length)) for length in range(70)]
    return texts


def test_fernet_reads_the_vaults_tokens() -> None:
    vault = PhoneVault(SECRET)
    texts = samples()
    before = int(time.time())
    tokens = vault.encrypt_many(texts)
    assert [FERNET.decrypt(token.encode("ascii")).decode("utf-8") for token in tokens] == texts
    assert [vault.decrypt(token) for token in tokens] == texts
    assert before <= FERNET.extract_timestamp(tokens[0].encode("ascii")) <= int(time.time())
    assert len(set(tokens)) == len(tokens)  # a fresh IV each: equal plaintexts differ too
    assert FERNET.decrypt(vault.encrypt_many(["+84912345678"])[0].encode("ascii")) == b"+84912345678"
    assert vault.decrypt(vault.encrypt("+84912345678")) == "+84912345678"


def test_tokens_have_fernets_layout() -> None:
    for text in samples():
        ours = base64.urlsafe_b64decode(PhoneVault(SECRET).encrypt_many([text])[0])
        theirs = base64.urlsafe_b64decode(FERNET.encrypt(text.encode("utf-8")))
        assert len(ours) == len(theirs)
        assert ours[0] == theirs[0] == 0x80


def test_the_vault_reads_fernets_tokens() -> None:
    vault = PhoneVault(SECRET)
    for text in samples():
        token = FERNET.encrypt(text.encode("utf-8")).decode("ascii")
        assert vault.decrypt(token) == text
        assert vault.is_current(token)


def test_lookup_hash_values_are_unchanged() -> None:
    old = "an-older-secret-key-0123456789"
    vault = PhoneVault(SECRET, old_secrets=[old])
    key, old_key = _derive(SECRET, b"phone-lookup-hash"), _derive(old, b"phone-lookup-hash")
    for text in [*samples(), "z" * 300]:
        assert vault.lookup_hash(text) == hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()
        assert vault.old_lookup_hashes(text) == [hmac.new(old_key, text.encode(), hashlib.sha256).hexdigest()]


def test_sampling_draws_are_unchanged() -> None:
    """The intake's sampling draw is an HMAC of the case_id: a resent case keeps its decision."""
    for secret in (SECRET, "s" * 100):
        for case_id in ("H01.40-261120-0001", "Đ-1", "x" * 64):
            message = b"sipas-sampling\x00" + case_id.encode("utf-8")
            digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()
            assert sampling_draw(secret, case_id) == int.from_bytes(digest[:8], "big") / 2**64
