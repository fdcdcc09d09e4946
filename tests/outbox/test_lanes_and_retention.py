"""The outbox's two lanes (a purchase's card update is never behind a campaign or trigger
wave) and the retention of delivered rows (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, select, update

from loyalwallet import db
from loyalwallet.outbox import handlers, retention, worker
from loyalwallet.outbox.models import BULK, INTERACTIVE, OutboxMessage
from loyalwallet.outbox.service import enqueue
from support import Shop


def _release(ids: list[int]) -> None:
    with db.transaction() as session:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids))
            .values(locked_until=None, attempts=OutboxMessage.attempts - 1)
        )


def test_a_purchase_is_claimed_before_a_thousand_queued_wave_rows(shop: Shop) -> None:
    program = shop.program("bonus")
    code = shop.card(program)["code"]
    worker.drain()
    with db.transaction() as session:
        for i in range(1000):
            enqueue(session, shop.merchant_id, "test.wave", {"i": i}, priority=BULK)
    shop.buy(code, 10_000)  # queues the card's card.changed after the whole wave
    try:
        claimed = worker.claim(batch=50)
        _release([d.id for d in claimed])
        topics = [(d.merchant_id, d.topic) for d in claimed]
        assert (shop.merchant_id, "card.changed") in topics
        waves = [i for i, (_, topic) in enumerate(topics) if topic == "test.wave"]
        assert not waves or topics.index((shop.merchant_id, "card.changed")) < waves[0]
        assert all(d.priority == INTERACTIVE for d in claimed if d.topic != "test.wave")
    finally:
        with db.transaction() as session:
            session.execute(delete(OutboxMessage).where(OutboxMessage.topic == "test.wave"))
        worker.drain()


def test_rows_queued_by_a_wave_row_stay_in_its_lane() -> None:
    def wave(msg: handlers.Delivery) -> None:
        with db.transaction() as session:
            enqueue(session, None, "test.lane-child", {"of": msg.payload["n"]})

    handlers.HANDLERS["test.lane-parent"] = wave
    handlers.HANDLERS["test.lane-child"] = lambda msg: None
    try:
        with db.transaction() as session:
            enqueue(session, None, "test.lane-parent", {"n": "bulk"}, priority=BULK)
            enqueue(session, None, "test.lane-parent", {"n": "person"})
        for _ in range(5):
            worker.run_once()
        with db.read() as session:
            children = {
                r.payload["of"]: r.priority
                for r in session.execute(
                    select(OutboxMessage.payload, OutboxMessage.priority).where(
                        OutboxMessage.topic == "test.lane-child"
                    )
                )
            }
        assert children == {"bulk": BULK, "person": INTERACTIVE}
    finally:
        handlers.HANDLERS.pop("test.lane-parent")
        handlers.HANDLERS.pop("test.lane-child")


def test_delivered_rows_go_after_the_retention_dead_ones_stay() -> None:
    now = db.utcnow()
    old = now - dt.timedelta(days=8)
    with db.transaction() as session:
        for status, at in (("done", old), ("done", now), ("dead", old), ("pending", old)):
            session.add(
                OutboxMessage(
                    topic="test.retention",
                    payload={"status": status, "old": at == old},
                    status=status,
                    attempts=1,
                    max_attempts=1 if status != "pending" else 12,
                    next_attempt_at=at if status != "pending" else now + dt.timedelta(days=1),
                    created_at=at,
                    delivered_at=at if status == "done" else None,
                )
            )
    try:
        assert retention.purge_delivered(batch=1) >= 1  # batches of one still finish
        with db.read() as session:
            left = sorted(
                (r.payload["status"], r.payload["old"])
                for r in session.scalars(select(OutboxMessage).where(OutboxMessage.topic == "test.retention"))
            )
        assert left == [("dead", True), ("done", False), ("pending", True)]
        assert retention.purge_delivered(days=0) == 0  # 0 keeps everything
    finally:
        with db.transaction() as session:
            session.execute(delete(OutboxMessage).where(OutboxMessage.topic == "test.retention"))
