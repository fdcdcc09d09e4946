"""Idempotency-Key handling for POS writes.

The record is claimed with INSERT ... ON CONFLICT DO NOTHING at the start of the
transaction. A concurrent request with the same key waits on that insert (PostgreSQL
blocks on the unique index; SQLite's BEGIN IMMEDIATE already serialises writers) and
then finds the first request's stored answer. A request that fails rolls back, record
included, so retrying a failed request with the same key runs it again.

The stored answer holds no personal data: the guest part of the card (`card.customer`,
name and masked phone) is kept as the guest's id only and drawn again from the guest's row
on a replay, so an erased guest's name is in no old answer. Records expire after
LOYALWALLET_IDEMPOTENCY_TTL_HOURS (72 by default); the periodic `purge_expired` deletes
them in batches.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import orjson
from sqlalchemy import bindparam, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from loyalwallet import db
from loyalwallet.checkout.models import IdempotencyRecord
from loyalwallet.config import env, per_process
from loyalwallet.customers.models import Customer
from loyalwallet.customers.service import view as customer_view
from loyalwallet.db import utcnow
from loyalwallet.errors import DomainError

MAX_KEY_LENGTH = 255
_TABLE = IdempotencyRecord.__table__
_CLAIM = {
    name: dialect.insert(_TABLE)
    .on_conflict_do_nothing(index_elements=["merchant_id", "scope", "key"])
    .returning(_TABLE.c.id)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}
_STORE = update(_TABLE).where(_TABLE.c.id == bindparam("record_id"))


DEFAULT_TTL_HOURS = 72
PURGE_BATCH = 1000


@per_process
def ttl() -> dt.timedelta:
    try:
        hours = float(env("IDEMPOTENCY_TTL_HOURS") or DEFAULT_TTL_HOURS)
    except ValueError:
        hours = DEFAULT_TTL_HOURS
    return dt.timedelta(hours=max(hours, 0.0))


def request_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def claim(
    session: Session, merchant_id: int, scope: str, key: str, body_hash: str
) -> tuple[int, dict[str, Any]] | int:
    """Claim `key`. Returns the new record's id, or (status, response) of the request
    that already used it. Raises idempotency_conflict when the body differs."""
    if not key or len(key) > MAX_KEY_LENGTH:
        raise DomainError("validation_error", f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} characters")
    stmt = _CLAIM[session.get_bind().dialect.name]
    params = {
        "merchant_id": merchant_id,
        "scope": scope,
        "key": key,
        "request_hash": body_hash,
        "created_at": (now := utcnow()),
        "expires_at": now + ttl(),
    }
    new_id = session.execute(stmt, params).scalar()
    if new_id is not None:
        return int(new_id)
    row = session.execute(
        select(
            IdempotencyRecord.id,
            IdempotencyRecord.request_hash,
            IdempotencyRecord.status_code,
            IdempotencyRecord.response,
            IdempotencyRecord.expires_at,
        ).where(
            IdempotencyRecord.merchant_id == merchant_id,
            IdempotencyRecord.scope == scope,
            IdempotencyRecord.key == key,
        )
    ).one()
    if row.expires_at is not None and row.expires_at <= params["created_at"]:
        # Expired but not purged yet: the key is free again.
        session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id == row.id))
        return int(session.execute(stmt, params).scalar_one())
    if row.request_hash != body_hash:
        raise DomainError(
            "idempotency_conflict", "this Idempotency-Key was already used with a different request body"
        )
    return int(row.status_code or 200), _with_guest(session, dict(row.response or {}))


def store(session: Session, record_id: int, status: int, response: dict[str, Any]) -> None:
    session.execute(
        _STORE, {"record_id": record_id, "status_code": status, "response": without_guest(response)}
    )


def without_guest(response: dict[str, Any]) -> dict[str, Any]:
    """The answer with the card's guest kept as an id (no name, no phone)."""
    card = response.get("card")
    if not isinstance(card, dict) or not isinstance(card.get("customer"), dict):
        return response
    guest = {"id": card["customer"].get("id"), "_ref": True}
    return {**response, "card": {**card, "customer": guest}}


def _with_guest(session: Session, response: dict[str, Any]) -> dict[str, Any]:
    card = response.get("card")
    if not isinstance(card, dict):
        return response
    ref = card.get("customer")
    if not isinstance(ref, dict) or not ref.get("_ref"):
        return response
    customer = session.get(Customer, ref.get("id")) if ref.get("id") is not None else None
    return {**response, "card": {**card, "customer": customer_view(customer) if customer else None}}


def purge_expired(now: dt.datetime | None = None, batches: int = 50) -> int:
    """Delete expired records, PURGE_BATCH at a time (short transactions); the count deleted.
    Records from before expiry existed (no expires_at) go when older than the TTL."""
    now = now or utcnow()
    done = 0
    for _ in range(batches):
        with db.transaction() as session:
            ids = session.scalars(
                select(IdempotencyRecord.id)
                .where(
                    or_(
                        IdempotencyRecord.expires_at <= now,
                        (IdempotencyRecord.expires_at.is_(None))
                        & (IdempotencyRecord.created_at <= now - ttl()),
                    )
                )
                .limit(PURGE_BATCH)
            ).all()
            if not ids:
                break
            session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id.in_(ids)))
            done += len(ids)
    if done:
        db.vacuum(IdempotencyRecord.__table__.name)
    return done
