"""HTTP API of the outbox for the admin: what is waiting, what went dead, retry it."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from sqlalchemy import func, select

from loyalwallet import db
from loyalwallet.api.deps import manager
from loyalwallet.errors import DomainError, not_found
from loyalwallet.merchants.actors import Actor
from loyalwallet.merchants.service import audit
from loyalwallet.outbox.models import OutboxMessage

router = APIRouter(prefix="/api/v1/outbox", tags=["outbox"])


def view(row: OutboxMessage) -> dict[str, Any]:
    return {
        "id": row.id,
        "topic": row.topic,
        "status": row.status,
        "attempts": row.attempts,
        "max_attempts": row.max_attempts,
        "last_error": row.last_error,
        "payload": row.payload,
        "next_attempt_at": row.next_attempt_at.isoformat() if row.status == "pending" else None,
        "created_at": row.created_at.isoformat(),
        "delivered_at": row.delivered_at.isoformat() if row.delivered_at else None,
    }


@router.get("", summary="Outbox rows of the merchant (dead letters with status=dead)")
def list_(
    status: Literal["pending", "done", "dead"] | None = Query(None),
    topic: str | None = Query(None, max_length=64),
    limit: int = Query(50, ge=1, le=500),
    who: Actor = Depends(manager),
) -> dict[str, Any]:
    with db.read() as session:
        stmt = select(OutboxMessage).where(OutboxMessage.merchant_id == who.merchant_id)
        if status is not None:
            stmt = stmt.where(OutboxMessage.status == status)
        if topic is not None:
            stmt = stmt.where(OutboxMessage.topic == topic)
        rows = session.scalars(stmt.order_by(OutboxMessage.id.desc()).limit(limit)).all()
        counts = dict(
            session.execute(
                select(OutboxMessage.status, func.count())
                .where(OutboxMessage.merchant_id == who.merchant_id, OutboxMessage.status != "done")
                .group_by(OutboxMessage.status)
            ).all()
        )
        return {
            "items": [view(r) for r in rows],
            "pending": int(counts.get("pending", 0)),
            "dead": int(counts.get("dead", 0)),
        }


@router.post("/{row_id}/retry", summary="Try a dead row again (a few more attempts)")
def retry(row_id: int, who: Actor = Depends(manager)) -> dict[str, Any]:
    with db.transaction() as session:
        row = session.get(OutboxMessage, row_id)
        if row is None or row.merchant_id != who.merchant_id:
            raise not_found("outbox row")
        if row.status != "dead":
            raise DomainError("conflict", f"the row is {row.status}, only dead rows are retried")
        row.status = "pending"
        row.max_attempts = row.attempts + 5
        row.next_attempt_at = db.utcnow()
        row.locked_until = None
        audit(session, who, "outbox.retry", "outbox", row.id, {"topic": row.topic})
        session.info["outbox_written"] = True
        return view(row)
