"""Keys, hashes and locks of the public enrollment flows: keys derived per purpose from the
server's session key, keyed IP and device hashes, and rate limits counted in the database.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from loyalwallet import db
from loyalwallet.config import get_settings
from loyalwallet.enrollment import rules
from loyalwallet.enrollment.models import RateHit
from loyalwallet.errors import Explained

# (session key, purpose) -> derived key: a campaign derives the same two keys for every
# guest (the unsubscribe link, the address's suppression hash).
_DERIVED: dict[tuple[bytes, str], bytes] = {}


def derived_key(purpose: str) -> bytes:
    """A key for one purpose, derived from the server's session key."""
    root = get_settings().session_key
    found = _DERIVED.get((root, purpose))
    if found is None:
        found = hmac.new(root, purpose.encode(), hashlib.sha256).digest()
        if len(_DERIVED) >= 64:  # keys of an earlier session key (tests switch settings)
            _DERIVED.clear()
        _DERIVED[(root, purpose)] = found
    return found


def ip_hash(ip: str | None) -> str | None:
    """Keyed, so the small IPv4 space cannot be reversed from a leaked table."""
    return hmac.new(derived_key("ip"), ip.encode(), hashlib.sha256).hexdigest()[:32] if ip else None


def device_hash(device_id: str | None) -> str | None:
    if not device_id or len(device_id) > 100:
        return None
    return hmac.new(derived_key("device"), device_id.encode(), hashlib.sha256).hexdigest()[:32]


def serialise(session: Session, name: str) -> None:
    """Make transactions about the same thing (a phone, an IP) take turns. SQLite's
    BEGIN IMMEDIATE already serialises writers; PostgreSQL takes an advisory lock."""
    if db.is_sqlite():
        return
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
    session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


def check_limit(session: Session, kind: str, key: str, now: dt.datetime) -> None:
    """Raise rate_limited (with retry_after seconds) when one more `kind` event for
    `key` is over the limit. Counted in the database: every process agrees."""
    limits = rules.LIMITS[kind]
    bucket = f"{kind}:{key}"[:100]
    serialise(session, bucket)
    hits = session.scalars(
        select(RateHit.created_at).where(
            RateHit.bucket == bucket, RateHit.created_at > now - rules.longest_window(limits)
        )
    ).all()
    wait = rules.retry_after(limits, list(hits), now)
    if wait is not None:
        raise Explained(
            "rate_limited",
            "too many requests; try again in {wait} s",
            wait=wait,
            extra={"retry_after": wait, "limit": kind},
        )


def count_hit(session: Session, kind: str, key: str, now: dt.datetime) -> None:
    session.add(RateHit(bucket=f"{kind}:{key}"[:100], created_at=now))
