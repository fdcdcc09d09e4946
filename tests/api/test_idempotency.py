"""Idempotency-Key: a retry never accrues twice; the same key with another body is 409."""

from __future__ import annotations

from support import Shop


def test_retry_returns_the_stored_answer(shop: Shop) -> None:
    code = shop.card(shop.program("bonus"))["code"]
    first = shop.post(
        "/api/v1/purchases",
        {"card": code, "amount": 50_000},
        role="cashier",
        headers={"Idempotency-Key": "till1-0001"},
    )
    again = shop.post(
        "/api/v1/purchases",
        {"card": code, "amount": 50_000},
        role="cashier",
        headers={"Idempotency-Key": "till1-0001"},
    )
    assert first.status_code == again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert first.json() == again.json()
    card = shop.get(f"/api/v1/cards/{code}").json()
    assert card["balance"] == 25 and card["visits"] == 1
    assert len(shop.get("/api/v1/purchases", params={"card": code}).json()["items"]) == 1


def test_same_key_other_body_is_409(shop: Shop) -> None:
    code = shop.card(shop.program("bonus"))["code"]
    shop.buy(code, 50_000, key="till1-0002")
    r = shop.post(
        "/api/v1/purchases",
        {"card": code, "amount": 60_000},
        role="cashier",
        headers={"Idempotency-Key": "till1-0002"},
    )
    assert r.status_code == 409 and r.json()["code"] == "idempotency_conflict"
    assert shop.get(f"/api/v1/cards/{code}").json()["visits"] == 1


def test_a_failed_request_can_be_retried_with_its_key(shop: Shop) -> None:
    code = shop.card(shop.program("bonus"))["code"]
    r = shop.post(
        "/api/v1/purchases",
        {"card": code, "amount": 10_000, "redeem_points": 5},
        role="cashier",
        headers={"Idempotency-Key": "k-fail"},
    )
    assert r.json()["code"] == "insufficient_points"
    shop.buy(code, 10_000, key="k-fail")


def test_keys_are_per_merchant_and_refunds_have_their_own(shop: Shop) -> None:
    code = shop.card(shop.program("bonus"))["code"]
    p = shop.buy(code, 10_000, key="same")
    r1 = shop.post(
        f"/api/v1/purchases/{p['id']}/refunds", {"amount": 1_000}, headers={"Idempotency-Key": "same"}
    )
    r2 = shop.post(
        f"/api/v1/purchases/{p['id']}/refunds", {"amount": 1_000}, headers={"Idempotency-Key": "same"}
    )
    assert r1.status_code == r2.status_code == 201 and r1.json()["id"] == r2.json()["id"]
    assert shop.get(f"/api/v1/purchases/{p['id']}").json()["refunded_amount"] == 1_000
