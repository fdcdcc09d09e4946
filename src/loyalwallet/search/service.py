"""Keeping the name token index in step with guests' names, and searching it.

A SQLAlchemy after_flush hook sees every Customer whose sealed name was added or changed
(any code path that writes guests through the ORM, e.g. customers.service.get_or_create)
and rewrites that guest's tokens in the same transaction. `reindex()` rebuilds the index
for a merchant (after restoring a backup, or for rows written with plain SQL).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from sqlalchemy import delete, func, insert, inspect, select
from sqlalchemy.orm import Session

from loyalwallet import crypto
from loyalwallet.config import get_settings
from loyalwallet.customers.models import Customer
from loyalwallet.search import rules
from loyalwallet.search.models import NameToken


def token(merchant_id: int, fragment: str) -> int:
    """64 bits of HMAC(index key, "name:<merchant>:<fragment>") as a signed integer."""
    digest = hmac.new(
        get_settings().index_key, f"name:{merchant_id}:{fragment}".encode(), hashlib.sha256
    ).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def tokens_for(merchant_id: int, name: str | None) -> list[int]:
    return sorted({token(merchant_id, p) for p in rules.prefixes(name)})


def _write(conn: Any, customer_id: int, merchant_id: int, name: str | None) -> None:
    conn.execute(delete(NameToken).where(NameToken.customer_id == customer_id))
    rows = [
        {"customer_id": customer_id, "token": t, "merchant_id": merchant_id}
        for t in tokens_for(merchant_id, name)
    ]
    if rows:
        conn.execute(insert(NameToken), rows)


def index_names(session: Session, _context: Any) -> None:
    """Session after_flush listener (wiring.SESSION_LISTENERS): new and renamed guests' name tokens."""
    changed = []
    for obj in list(session.new) + list(session.dirty):
        if not isinstance(obj, Customer) or obj.id is None:
            continue
        if obj in session.new or inspect(obj).attrs.name_enc.history.has_changes():
            changed.append(obj)
    if not changed:
        return
    conn = session.connection()
    for customer in changed:
        name = crypto.open_(customer.name_enc, merchant_id=customer.merchant_id, column="name")
        _write(conn, customer.id, customer.merchant_id, name)


def search(session: Session, merchant_id: int, query: str, limit: int = 50, offset: int = 0) -> list[int]:
    """Ids of the merchant's guests whose name has a word starting with each word of
    `query` (newest first). The caller decrypts the page and may re-check with
    rules.matches (a word longer than 12 letters is matched on its first 12)."""
    terms = rules.query_terms(query)
    if not terms:
        return []
    wanted = [token(merchant_id, t) for t in terms]
    stmt = (
        select(NameToken.customer_id)
        .where(NameToken.merchant_id == merchant_id, NameToken.token.in_(wanted))
        .group_by(NameToken.customer_id)
        .having(func.count(NameToken.token) == len(set(wanted)))
        .order_by(NameToken.customer_id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(session.scalars(stmt))


def reindex(session: Session, merchant_id: int, batch: int = 1000) -> int:
    """Rebuild the merchant's name tokens from the sealed names; returns guests indexed."""
    session.execute(delete(NameToken).where(NameToken.merchant_id == merchant_id))
    done = 0
    last = 0
    conn = session.connection()
    while True:
        rows = session.execute(
            select(Customer.id, Customer.name_enc)
            .where(Customer.merchant_id == merchant_id, Customer.id > last, Customer.name_enc.is_not(None))
            .order_by(Customer.id)
            .limit(batch)
        ).all()
        if not rows:
            return done
        for cid, blob in rows:
            _write(conn, cid, merchant_id, crypto.open_(blob, merchant_id=merchant_id, column="name"))
        done += len(rows)
        last = rows[-1].id
