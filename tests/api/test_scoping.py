"""Every query is scoped by merchant: a key of merchant A sees nothing of merchant B."""

from __future__ import annotations

from support import Shop, new_shop


def test_merchant_a_cannot_reach_merchant_b(shop: Shop) -> None:
    other = new_shop(shop.client, "Other café")
    pid_b = other.program("bonus")
    card_b = other.card(pid_b, "+79167770001")
    p_b = other.buy(card_b["code"], 10_000)

    assert shop.get(f"/api/v1/cards/{card_b['code']}").status_code == 404
    assert shop.get(f"/api/v1/cards/{card_b['code']}/transactions").status_code == 404
    assert shop.get("/api/v1/cards", params={"phone": "+79167770001"}).json() == {"items": []}
    assert shop.get(f"/api/v1/programs/{pid_b}").status_code == 404
    assert shop.get(f"/api/v1/purchases/{p_b['id']}").status_code == 404
    assert shop.post(f"/api/v1/purchases/{p_b['id']}/refunds", {}).status_code == 404
    assert (
        shop.post("/api/v1/purchases", {"card": card_b["code"], "amount": 100}, role="cashier").status_code
        == 404
    )
    assert shop.post("/api/v1/cards", {"program_id": pid_b, "phone": "+79167770002"}).status_code == 404
    assert (
        shop.post(f"/api/v1/cards/{card_b['code']}/adjustments", {"points": 5, "reason": "steal"}).status_code
        == 404
    )
    assert all(p["id"] != p_b["id"] for p in shop.get("/api/v1/purchases").json()["items"])
    # And B's card is untouched.
    assert (
        other.get(f"/api/v1/cards/{card_b['code']}").json()["balance"]
        == card_b["balance"] + p_b["points_accrued"]
    )


def test_same_phone_at_two_merchants_is_two_guests(shop: Shop) -> None:
    other = new_shop(shop.client, "Other café")
    a = shop.card(shop.program("stamp"), "+79168880001")
    b = other.card(other.program("stamp"), "+79168880001")
    assert a["created"] and b["created"]
