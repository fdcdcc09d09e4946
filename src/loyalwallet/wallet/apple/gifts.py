"""The serial numbers of gift-certificate passes: `gc.` and 32 hex characters, the
certificate id through AES under a key derived from the index key (as coupons' serials:
unguessable, reveals no count, maps back to the id without a stored column). The web
service and the outbox listener both use it; the pass itself is built by service.py."""

from __future__ import annotations

import hashlib
import hmac

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from loyalwallet.config import get_settings

GIFT_SERIAL_PREFIX = "gc."


def _cipher() -> Cipher[modes.ECB]:
    key = hmac.new(get_settings().index_key, b"gift-certificate-serial", hashlib.sha256).digest()
    return Cipher(algorithms.AES(key), modes.ECB())


def gift_serial(certificate_id: int) -> str:
    enc = _cipher().encryptor()
    return GIFT_SERIAL_PREFIX + (enc.update(certificate_id.to_bytes(16, "big")) + enc.finalize()).hex()


def gift_id(serial: str) -> int | None:
    """The certificate id of a `gc.` serial, or None (not one of ours)."""
    raw = serial[len(GIFT_SERIAL_PREFIX) :]
    if not serial.startswith(GIFT_SERIAL_PREFIX) or len(raw) != 32:
        return None
    try:
        block = bytes.fromhex(raw)
    except ValueError:
        return None
    dec = _cipher().decryptor()
    value = int.from_bytes(dec.update(block) + dec.finalize(), "big")
    return value if 0 < value < 2**63 else None
