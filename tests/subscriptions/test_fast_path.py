"""A purchase with `subscription` is never answered by the fast checkout path (it knows
no subscriptions): it falls back to the general path, which uses the unit (PostgreSQL;
on SQLite the fast path is off and both answers come from the general path)."""

from __future__ import annotations

from loyalwallet.checkout import fast
from support import Shop


def test_a_subscription_purchase_takes_the_general_path(shop: Shop) -> None:
    pid = shop.program("bonus")
    code = shop.card(pid)["code"]
    shop.buy(code, 1000)  # the per-process caches, as any server has them
    plan = shop.post(
        "/api/v1/subscription-plans",
        {"name": "Cups", "units": 5, "period_days": 30, "price": 1},
        role="manager",
    ).json()
    sub = shop.post("/api/v1/subscriptions", {"plan_id": plan["id"], "card": code}, role="cashier").json()
    before = dict(fast.SERVED)
    r = shop.post(
        "/api/v1/purchases",
        {"card": code, "amount": 20_000, "items": [{"price": 20_000}], "subscription": sub["id"]},
        role="cashier",
    )
    assert r.status_code == 201, r.text
    assert r.json()["subscription"]["units_left"] == 4 and r.json()["to_collect"] == 0
    assert fast.SERVED["fast"] == before["fast"]
    plain = shop.post("/api/v1/purchases", {"card": code, "amount": 20_000}, role="cashier")
    assert plain.status_code == 201 and "subscription" not in plain.json()
    if fast.enabled():
        assert fast.SERVED["fast"] == before["fast"] + 1  # the everyday purchase still goes fast


def test_a_purchase_without_subscription_keeps_its_idempotency_hash() -> None:
    """The field is left out of the body's dump when absent: the Idempotency-Key hash of
    every existing purchase body is what it was before (a retry spanning the upgrade still
    replays instead of answering 409)."""
    from loyalwallet.checkout import idempotency
    from loyalwallet.checkout.schemas import PurchaseIn

    plain = PurchaseIn(card="2000000000015", amount=35_000)
    assert "subscription" not in plain.model_dump()
    assert idempotency.request_hash(plain.model_dump()) == idempotency.request_hash(
        {
            "card": "2000000000015",
            "amount": 35_000,
            "redeem_points": 0,
            "items": None,
            "coupon": None,
            "use_reward": False,
            "external_id": None,
            "location_id": None,
            "certificate": None,
            "certificate_amount": None,
        }
    )
    used = PurchaseIn(card="2000000000015", amount=35_000, subscription=7)
    assert used.model_dump()["subscription"] == 7
    assert idempotency.request_hash(used.model_dump()) != idempotency.request_hash(plain.model_dump())
