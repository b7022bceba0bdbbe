"""Encryption at rest for quarantined bytes that could not be redacted: AES-256-GCM with a key
derived (HKDF-SHA256) from the server's redaction key, so replicas sharing REDACTION_KEY share it.

Pure; the key comes from app/redaction_key.py.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_VERSION: Final = b"\x01"
_NONCE_BYTES: Final = 12


class SealBroken(ValueError):
    """The sealed bytes do not open with this key (another key, or damaged)."""


class Sealer:
    def __init__(self, key: bytes) -> None:
        derived = HKDF(
            algorithm=hashes.SHA256(), length=64, salt=None, info=b"audit-timeline quarantine"
        ).derive(key)
        self._aead = AESGCM(derived[:32])
        self._digest_key = derived[32:]

    def seal(self, data: bytes) -> bytes:
        """Version byte, random nonce, ciphertext and tag."""
        nonce = os.urandom(_NONCE_BYTES)
        return _VERSION + nonce + self._aead.encrypt(nonce, data, _VERSION)

    def open(self, sealed: bytes) -> bytes:
        """The original bytes of seal(); SealBroken when they do not open."""
        if sealed[:1] != _VERSION:
            raise SealBroken("unknown seal version")
        nonce, ciphertext = sealed[1 : 1 + _NONCE_BYTES], sealed[1 + _NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, ciphertext, _VERSION)
        except InvalidTag:
            raise SealBroken("sealed with another key, or damaged") from None

    def digest(self, data: bytes) -> bytes:
        """A keyed digest: identifies repeats without letting a dump guess a low-entropy secret."""
        return hmac.new(self._digest_key, data, hashlib.sha256).digest()
