"""Helpers of the Google Wallet tests (fixtures are in conftest.py)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from cryptography.hazmat.primitives import serialization
from sqlalchemy import select, update

from loyalwallet import db
from loyalwallet.outbox import worker
from loyalwallet.outbox.models import OutboxMessage
from loyalwallet.wallet.google.keys import development_key_file


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


def new_key() -> tuple[str, Any]:
    """A service-account key file and its public half."""
    text = development_key_file("test-project")
    pem = json.loads(text)["private_key"].encode()
    return text, serialization.load_pem_private_key(pem, password=None).public_key()


def register_key(fake: Any) -> str:
    """A key file the fake Google knows."""
    text, public = new_key()
    fake.register(json.loads(text)["client_email"], public)
    return text
