"""Helpers of the Google Wallet tests (fixtures are in conftest.py)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update

from loyalwallet import db
from loyalwallet.outbox import worker
from loyalwallet.outbox.models import OutboxMessage


def make_due(merchant_id: int) -> None:
    """Pending deliveries of this merchant become due now (skip the backoff wait)."""
    with db.transaction() as session:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.merchant_id == merchant_id, OutboxMessage.status == "pending")
            .values(next_attempt_at=db.utcnow() - dt.timedelta(seconds=1), locked_until=None)
        )


def deliveries(merchant_id: int, topic_prefix: str = "google.") -> list[OutboxMessage]:
    with db.read() as session:
        return list(
            session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.merchant_id == merchant_id, OutboxMessage.topic.startswith(topic_prefix))
                .order_by(OutboxMessage.id)
            )
        )


def drain() -> int:
    return worker.drain()
