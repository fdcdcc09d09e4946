"""Webhook signatures (pure): HMAC-SHA256 over "<timestamp>.<body>" with the endpoint's
secret, sent as `Loyalwallet-Signature: v1=<hex>` next to `Loyalwallet-Timestamp`.

A receiver recomputes the HMAC over the raw body it got, compares in constant time and
refuses timestamps older than a few minutes (replays).
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "Loyalwallet-Signature"
TIMESTAMP_HEADER = "Loyalwallet-Timestamp"
TOLERANCE_SECONDS = 300


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def verify(
    secret: str,
    timestamp: str | int,
    body: bytes,
    signature: str,
    *,
    now: float,
    tolerance: int = TOLERANCE_SECONDS,
) -> bool:
    """What a receiver does: a fresh timestamp and a matching v1 signature."""
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs(now - ts) > tolerance:
        return False
    expected = sign(secret, ts, body)
    # Several signatures may be sent (a secret being rotated): any match will do.
    return any(hmac.compare_digest(expected, part.strip()) for part in signature.split(","))
