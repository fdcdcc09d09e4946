"""Idempotency-Key handling for POS writes.

The record is claimed with INSERT ... ON CONFLICT DO NOTHING at the start of the
transaction. A concurrent request with the same key waits on that insert (PostgreSQL
blocks on the unique index; SQLite's BEGIN IMMEDIATE already serialises writers) and
then finds the first request's stored answer. A request that fails rolls back, record
included, so retrying a failed request with the same key runs it again.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from loyalwallet.checkout.models import IdempotencyRecord
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
        "created_at": utcnow(),
    }
    new_id = session.execute(stmt, params).scalar()
    if new_id is not None:
        return int(new_id)
    row = session.execute(
        select(
            IdempotencyRecord.request_hash, IdempotencyRecord.status_code, IdempotencyRecord.response
        ).where(
            IdempotencyRecord.merchant_id == merchant_id,
            IdempotencyRecord.scope == scope,
            IdempotencyRecord.key == key,
        )
    ).one()
    if row.request_hash != body_hash:
        raise DomainError(
            "idempotency_conflict", "this Idempotency-Key was already used with a different request body"
        )
    return int(row.status_code or 200), dict(row.response or {})


def store(session: Session, record_id: int, status: int, response: dict[str, Any]) -> None:
    session.execute(_STORE, {"record_id": record_id, "status_code": status, "response": response})
