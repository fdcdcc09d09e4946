"""Encryption of guests' PII at rest and the keyed blind index used to find them.

- `seal`/`open_`: AES-256-GCM. Stored form: b"\\x01" (format) + 12-byte nonce + ciphertext+tag.
  The associated data binds a value to its merchant and column, so a ciphertext copied
  into another row or another merchant does not decrypt.
- `blind_index`: HMAC-SHA256 over "<merchant_id>:<value>" with a separate key. Equal
  phones of one merchant give equal indexes; nothing about the phone can be read back,
  and the same phone at two merchants is not linkable.
- `token`: unguessable URL-safe tokens (card links, pass auth tokens, API keys).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from loyalwallet.config import get_settings

_FORMAT = b"\x01"
# The cipher of the current PII key (configure() may swap the settings, e.g. in tests).
_aead: tuple[bytes, AESGCM] | None = None


def _cipher() -> AESGCM:
    global _aead
    key = get_settings().pii_key
    if _aead is None or _aead[0] is not key:
        _aead = (key, AESGCM(key))
    return _aead[1]


def seal(plaintext: str | None, *, merchant_id: int, column: str) -> bytes | None:
    if plaintext is None:
        return None
    nonce = os.urandom(12)
    aad = f"{merchant_id}:{column}".encode()
    return _FORMAT + nonce + _cipher().encrypt(nonce, plaintext.encode(), aad)


def open_(blob: bytes | None, *, merchant_id: int, column: str) -> str | None:
    if blob is None:
        return None
    if blob[:1] != _FORMAT:
        raise ValueError("unknown ciphertext format")
    aad = f"{merchant_id}:{column}".encode()
    return _cipher().decrypt(blob[1:13], blob[13:], aad).decode()


def blind_index(value: str, *, merchant_id: int) -> str:
    key = get_settings().index_key
    return hmac.new(key, f"{merchant_id}:{value}".encode(), hashlib.sha256).hexdigest()


def token(nbytes: int = 24) -> str:
    return secrets.token_urlsafe(nbytes)


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
