"""Ledger behaviour over time: expiry, rolling-window tiers, referral, locations,
program changes reaching cards, guests' data export and erasure."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update

from loyalwallet import db
from loyalwallet.cards.models import Card, LedgerEntry
from loyalwallet.cards.sweeps import check_ledger, expire_points
from loyalwallet.checkout.models import Purchase
from loyalwallet.outbox import worker
from loyalwallet.outbox.models import OutboxMessage
from support import Shop, random_phone

TIERS = [
    {"name": "Base", "min_spend": 0, "cashback_pct": 10},
    {"name": "Gold", "min_spend": 50_000, "cashback_pct": 20},
]


def _card_id(shop: Shop, code: str) -> int:
    with db.read() as session:
        return int(
            session.scalar(select(Card.id).where(Card.merchant_id == shop.merchant_id, Card.code == code))
        )


def test_points_expire_fifo_and_the_sweep_writes_them_off(shop: Shop) -> None:
    code = shop.card(
        shop.program("bonus", {"tiers": TIERS, "ttl_days": 30, "welcome_points": 100, "max_redeem_pct": 100})
    )["code"]
    card_id = _card_id(shop, code)
    # Age the welcome lot by 31 days.
    with db.transaction() as session:
        session.execute(
            update(LedgerEntry)
            .where(LedgerEntry.card_id == card_id)
            .values(expires_at=db.utcnow() - dt.timedelta(days=1))
        )
    shop.buy(code, 10_000)  # +10 points, fresh
    r = shop.post("/api/v1/purchases", {"card": code, "amount": 100_000, "redeem_points": 11}, role="cashier")
    assert r.json()["code"] == "insufficient_points" and r.json()["available"] == 10
    expire_points()
    card = shop.get(f"/api/v1/cards/{code}").json()
    assert card["balance"] == 10
    kinds = [(e["kind"], e["points"]) for e in shop.get(f"/api/v1/cards/{code}/transactions").json()["items"]]
    assert ("expiry", -100) in kinds
    with db.read() as session:
        assert check_ledger(session) == []


def test_rolling_window_tier(shop: Shop) -> None:
    code = shop.card(shop.program("bonus", {"tiers": TIERS, "tier_period_days": 30}))["code"]
    p = shop.buy(code, 60_000)
    assert p["card"]["tier"] == "Gold"
    with db.transaction() as session:
        session.execute(
            update(Purchase)
            .where(Purchase.id == p["id"])
            .values(created_at=db.utcnow() - dt.timedelta(days=31))
        )
    p2 = shop.buy(code, 1_000)
    assert p2["tier_before"] == "Base" and p2["points_accrued"] == 1 and p2["card"]["tier"] == "Base"


def test_referral_rewards_both_once(shop: Shop) -> None:
    pid = shop.program("bonus", {"tiers": TIERS, "referral_points": 50})
    friend_of = shop.card(pid)
    friend = shop.card(pid, referrer=friend_of["code"])
    p = shop.buy(friend["code"], 10_000)
    assert p["card"]["balance"] == 10 + 50
    worker.drain()
    assert shop.get(f"/api/v1/cards/{friend_of['code']}").json()["balance"] == 50
    shop.buy(friend["code"], 10_000)
    worker.drain()
    assert shop.get(f"/api/v1/cards/{friend_of['code']}").json()["balance"] == 50
    # Referring yourself does nothing: same phone, same guest.
    phone = random_phone()
    me = shop.card(pid, phone)
    again = shop.card(pid, phone, referrer=me["code"])
    assert again["code"] == me["code"]


def test_key_bound_to_a_location(shop: Shop) -> None:
    other = shop.post("/api/v1/locations", {"name": "Second", "latitude": 55.75, "longitude": 37.61}).json()
    key = shop.post(
        "/api/v1/api-keys", {"name": "till", "role": "cashier", "location_id": shop.location_id}
    ).json()["api_key"]
    code = shop.card(shop.program("bonus"))["code"]
    headers = {"Authorization": f"Bearer {key}"}
    r = shop.client.post(
        "/api/v1/purchases", json={"card": code, "amount": 1_000, "location_id": other["id"]}, headers=headers
    )
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    r = shop.client.post("/api/v1/purchases", json={"card": code, "amount": 1_000}, headers=headers)
    assert r.status_code == 201 and r.json()["location_id"] == shop.location_id


def test_program_change_reaches_every_card(shop: Shop) -> None:
    pid = shop.program("bonus", {"tiers": TIERS})
    codes = [shop.card(pid)["code"] for _ in range(3)]
    r = shop.call(
        "PATCH", f"/api/v1/programs/{pid}", "manager", json={"rules": {"tiers": TIERS, "welcome_points": 10}}
    )
    assert r.status_code == 200 and r.json()["version"] == 2
    worker.drain()
    ids = [_card_id(shop, c) for c in codes]
    with db.read() as session:
        rows = session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.topic == "card.changed", OutboxMessage.merchant_id == shop.merchant_id
            )
        ).all()
    changed = [i for row in rows if row.payload["reason"] == "program" for i in row.payload["card_ids"]]
    assert sorted(changed) == sorted(ids)  # each card once (in chunks, see outbox.core_handlers)
    bad = shop.call("PATCH", f"/api/v1/programs/{pid}", "manager", json={"rules": {"tiers": []}})
    assert bad.status_code == 422


def test_export_and_erase(shop: Shop) -> None:
    phone = random_phone()
    code = shop.card(
        shop.program("stamp"), phone, name="Мария", email="m@example.com", birthday="1990-05-17"
    )["code"]
    data = shop.get("/api/v1/customers/export", params={"phone": phone}, role="manager").json()
    assert data["name"] == "Мария" and data["phone"] == phone and data["birthday"] == "1990-05-17"
    assert data["cards"][0]["code"] == code
    assert shop.post("/api/v1/customers/erase", {"phone": phone}, role="manager").status_code == 403
    assert shop.post("/api/v1/customers/erase", {"phone": phone}).json()["erased"] is True
    assert shop.get("/api/v1/cards", params={"phone": phone}).json() == {"items": []}
    card = shop.get(f"/api/v1/cards/{code}").json()
    assert card["customer"]["name"] is None and card["customer"]["erased"] is True
    with db.read() as session:
        reasons = [
            m.payload.get("reason")
            for m in session.scalars(
                select(OutboxMessage).where(
                    OutboxMessage.merchant_id == shop.merchant_id, OutboxMessage.topic == "card.changed"
                )
            )
        ]
    assert "erase" in reasons  # wallets drop the name too
