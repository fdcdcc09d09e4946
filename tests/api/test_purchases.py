"""Purchases, quotes and refunds over HTTP, following the checkout order."""

from __future__ import annotations

from support import Shop

BONUS = {
    "tiers": [
        {"name": "Bronze", "min_spend": 0, "cashback_pct": 5},
        {"name": "Silver", "min_spend": 100_000, "cashback_pct": 10},
    ],
    "welcome_points": 500,
    "max_redeem_pct": 50,
}


def test_purchase_with_redemption_and_accrual(shop: Shop) -> None:
    code = shop.card(shop.program("bonus", BONUS))["code"]
    quote = shop.post(
        "/api/v1/purchases/quote", {"card": code, "amount": 40_000, "redeem_points": 100}, role="cashier"
    ).json()
    assert (quote["to_pay"], quote["points_accrued"], quote["max_redeem_points"]) == (30_000, 15, 200)
    assert shop.get(f"/api/v1/cards/{code}").json()["balance"] == 500  # the quote wrote nothing

    p = shop.buy(code, 40_000, redeem_points=100, external_id="check-1")
    for key in (
        "id",
        "amount",
        "discount",
        "points_redeemed",
        "to_pay",
        "points_accrued",
        "stamps_added",
        "card",
    ):
        assert key in p
    assert (p["amount"], p["points_redeemed"], p["to_pay"], p["points_accrued"]) == (40_000, 100, 30_000, 15)
    assert p["card"]["balance"] == 415 and p["card"]["visits"] == 1
    kinds = [(e["kind"], e["points"]) for e in shop.get(f"/api/v1/cards/{code}/transactions").json()["items"]]
    assert kinds == [("accrual", 15), ("redemption", -100), ("welcome", 500)]
    assert (
        shop.get("/api/v1/purchases", params={"external_id": "check-1"}).json()["items"][0]["id"] == p["id"]
    )


def test_tier_rises_after_spend(shop: Shop) -> None:
    code = shop.card(shop.program("bonus", BONUS))["code"]
    p = shop.buy(code, 120_000)
    assert p["tier_before"] == "Bronze" and p["tier_after"] == "Silver"
    assert p["points_accrued"] == 60 and p["card"]["tier"] == "Silver"
    assert shop.buy(code, 10_000)["points_accrued"] == 10


def test_full_refund_reverses_everything(shop: Shop) -> None:
    code = shop.card(shop.program("bonus", BONUS))["code"]
    p = shop.buy(code, 40_000, redeem_points=200)
    assert p["card"]["balance"] == 500 - 200 + 10
    r = shop.post(f"/api/v1/purchases/{p['id']}/refunds", {}, role="cashier")
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["amount"], body["points_reversed"], body["points_returned"], body["money_returned"]) == (
        40_000,
        10,
        200,
        20_000,
    )
    assert body["card"]["balance"] == 500 and body["card"]["spend"] == 0
    again = shop.post(f"/api/v1/purchases/{p['id']}/refunds", {"amount": 1}, role="cashier")
    assert again.status_code == 422 and again.json()["code"] == "refund_exceeds_purchase"


def test_partial_refunds_are_proportional_and_bounded(shop: Shop) -> None:
    code = shop.card(shop.program("bonus", BONUS))["code"]
    p = shop.buy(code, 33_333)  # 1666 points? no: 5 % of 333.33 RUB = 16 points
    assert p["points_accrued"] == 16
    reversed_total = 0
    for amount in (10_000, 10_000, 10_000):
        r = shop.post(f"/api/v1/purchases/{p['id']}/refunds", {"amount": amount}).json()
        reversed_total += r["points_reversed"]
    assert reversed_total == 16 * 30_000 // 33_333
    r = shop.post(f"/api/v1/purchases/{p['id']}/refunds", {"amount": 3_334})
    assert r.status_code == 422 and r.json()["refundable"] == 3_333
    r = shop.post(f"/api/v1/purchases/{p['id']}/refunds", {"amount": 3_333}).json()
    assert reversed_total + r["points_reversed"] == 16 and r["purchase_status"] == "refunded"


def test_refund_of_spent_points_makes_debt_or_clamps(shop: Shop) -> None:
    for policy, expected in (("allow", -10), ("clamp", 0)):
        rules = {**BONUS, "welcome_points": 0, "refund_debt": policy, "max_redeem_pct": 100}
        code = shop.card(shop.program("bonus", rules))["code"]
        p = shop.buy(code, 20_000)  # +10 points
        shop.buy(code, 1_000, redeem_points=10)  # spend them
        r = shop.post(f"/api/v1/purchases/{p['id']}/refunds", {}).json()
        assert r["card"]["balance"] == expected
        assert r["points_reversed"] == (10 if policy == "allow" else 0)
        if policy == "allow":  # the next accrual repays the debt first
            after = shop.buy(code, 40_000)["card"]
            assert after["balance"] == 10 and after["points_available"] == 10


def test_refund_by_lines(shop: Shop) -> None:
    code = shop.card(shop.program("bonus", BONUS))["code"]
    items = [{"sku": "LATTE", "qty": 2, "price": 25_000}, {"sku": "CAKE", "qty": 1, "price": 30_000}]
    p = shop.buy(code, 80_000, items=items)
    r = shop.post(f"/api/v1/purchases/{p['id']}/refunds", {"lines": [{"line": 0, "qty": 1}]})
    assert r.status_code == 201 and r.json()["amount"] == 25_000
    r = shop.post(f"/api/v1/purchases/{p['id']}/refunds", {"lines": [{"line": 0, "qty": 2}]})
    assert r.status_code == 422 and r.json()["code"] == "refund_exceeds_purchase"
    view = shop.get(f"/api/v1/purchases/{p['id']}").json()
    assert view["items"][0]["refunded_qty"] == 1 and view["refundable"] == 55_000


def test_discount_program(shop: Shop) -> None:
    pid = shop.program(
        "discount",
        {
            "tiers": [
                {"name": "Base", "min_spend": 0, "discount_pct": 5},
                {"name": "VIP", "min_spend": 50_000, "discount_pct": 15},
            ]
        },
    )
    code = shop.card(pid)["code"]
    p = shop.buy(code, 60_000)
    assert (p["discount"], p["to_pay"], p["points_accrued"]) == (3_000, 57_000, 0)
    assert p["card"]["tier"] == "VIP" and p["card"]["discount_pct"] == 15.0
    assert shop.buy(code, 10_000)["discount"] == 1_500


def test_stamp_card_reward_cycle(shop: Shop) -> None:
    # stamps_required 3: two paid coffees, the third free (programs.rules.StampRules).
    pid = shop.program(
        "stamp",
        {"stamps_required": 3, "reward": {"kind": "free_item", "name": "Free coffee", "category": "coffee"}},
    )
    code = shop.card(pid)["code"]
    coffee = [{"sku": "LATTE", "category": "coffee", "qty": 1, "price": 20_000}]
    p = shop.buy(code, 20_000, items=coffee)
    assert p["stamps_added"] == 1 and p["rewards_earned"] == 0 and p["card"]["stamps"] == 1
    p = shop.buy(code, 20_000, items=coffee)
    assert p["stamps_added"] == 1 and p["rewards_earned"] == 1
    card = p["card"]
    assert card["stamps"] == 0 and len(card["rewards"]) == 1 and card["rewards"][0]["name"] == "Free coffee"
    assert (card["stamps_required"], card["stamps_to_collect"]) == (3, 2)
    free = shop.buy(code, 20_000, items=coffee, use_reward=True)  # the third visit
    assert free["to_pay"] == 0 and free["discount"] == 20_000 and free["stamps_added"] == 0
    assert free["card"]["rewards"] == []
    r = shop.post("/api/v1/purchases", {"card": code, "amount": 20_000, "use_reward": True}, role="cashier")
    assert r.status_code == 422 and r.json()["code"] == "coupon_invalid"


def test_free_item_reward_from_the_amount_alone(shop: Shop) -> None:
    pid = shop.program(
        "stamp", {"stamps_required": 2, "reward": {"kind": "free_item", "name": "Coffee", "value": 20_000}}
    )
    code = shop.card(pid)["code"]
    assert shop.buy(code, 15_000)["rewards_earned"] == 1  # 2: one paid cup, the second free
    free = shop.buy(code, 35_000, use_reward=True)  # no check lines
    assert (free["discount"], free["to_pay"]) == (20_000, 15_000)
    # A reward of "the item's price" without lines says what to do.
    pid = shop.program("stamp", {"stamps_required": 2, "reward": {"kind": "free_item", "name": "Cup"}})
    code = shop.card(pid)["code"]
    shop.buy(code, 15_000)
    r = shop.post("/api/v1/purchases", {"card": code, "amount": 20_000, "use_reward": True}, role="cashier")
    assert r.status_code == 422 and r.json()["code"] == "coupon_invalid"
    assert "add the free item as a line" in r.json()["detail"]


def test_refund_revokes_an_unused_reward(shop: Shop) -> None:
    pid = shop.program("stamp", {"stamps_required": 3})
    code = shop.card(pid)["code"]
    shop.buy(code, 10_000)
    p = shop.buy(code, 10_000)
    assert len(p["card"]["rewards"]) == 1
    r = shop.post(f"/api/v1/purchases/{p['id']}/refunds", {}).json()
    assert r["stamps_reversed"] == 1 and r["card"]["stamps"] == 1 and r["card"]["rewards"] == []


def test_welcome_points_and_pending_hours(shop: Shop) -> None:
    pid = shop.program("bonus", {**BONUS, "pending_hours": 24})
    code = shop.card(pid)["code"]
    p = shop.buy(code, 100_000)
    assert (
        p["card"]["balance"] == 550
        and p["card"]["points_pending"] == 50
        and p["card"]["points_available"] == 500
    )
    r = shop.post(
        "/api/v1/purchases", {"card": code, "amount": 200_000, "redeem_points": 501}, role="cashier"
    )
    assert r.json()["code"] == "insufficient_points"
