"""A program's design or rules change refreshes every card, in chunks like a campaign."""

from __future__ import annotations

from sqlalchemy import select

from loyalwallet import db
from loyalwallet.cards.handlers import PROGRAM_CHUNK
from loyalwallet.cards.models import Card
from loyalwallet.outbox import worker
from loyalwallet.outbox.models import OutboxMessage
from support import Shop


def test_a_design_change_bumps_every_card_and_queues_chunks(shop: Shop) -> None:
    program = shop.program("stamp")
    other = shop.program("stamp")
    count = PROGRAM_CHUNK + 5
    codes = [shop.card(program)["code"] for _ in range(count)]
    bystander = shop.card(other)["code"]
    worker.drain()
    with db.read() as session:
        versions = dict(session.execute(select(Card.code, Card.version)).all())
        last_row = session.scalar(select(OutboxMessage.id).order_by(OutboxMessage.id.desc()).limit(1))

    r = shop.call("PATCH", f"/api/v1/programs/{program}", "manager", json={"design": {"barcode": "pdf417"}})
    assert r.status_code == 200, r.text
    worker.drain()

    with db.read() as session:
        after = dict(session.execute(select(Card.code, Card.version)).all())
        rows = session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.id > last_row, OutboxMessage.topic == "card.changed")
            .order_by(OutboxMessage.id)  # unordered, PostgreSQL gave them [5, 100] once
        ).all()
    assert all(after[c] == versions[c] + 1 for c in codes)
    assert after[bystander] == versions[bystander]
    assert [len(r.payload["card_ids"]) for r in rows] == [PROGRAM_CHUNK, 5]
    assert all(r.payload["reason"] == "program" and r.status == "done" for r in rows)
