"""A running subscription on the card's Google object: a text module with what is left
and until when, patched through the outbox when a unit is used (the fake Google checks
every request against the published loyaltyObject description)."""

from __future__ import annotations

from typing import Any

from wallet.google.helpers import drain


def _object(fake: Any, code: str) -> dict[str, Any]:
    (obj,) = [o for o in fake.objects.values() if o["accountId"] == code]
    return obj


def test_a_use_patches_the_text_module(gshop) -> None:
    shop, fake = gshop.shop, gshop.fake
    card = shop.card(shop.program("bonus"))
    drain()
    plan = shop.post(
        "/api/v1/subscription-plans", {"name": "Coffee month", "units": 20, "period_days": 30, "price": 1},
        role="manager",
    ).json()  # fmt: skip
    sub = shop.post(
        "/api/v1/subscriptions", {"plan_id": plan["id"], "card": card["code"]}, role="cashier"
    ).json()
    drain()
    key = f"subscription_{sub['id']}"
    (module,) = [m for m in _object(fake, card["code"]).get("textModulesData", []) if m["id"] == key]
    assert module["header"] == "Coffee month" and module["body"].startswith("Осталось: 20 · до ")
    shop.post(f"/api/v1/subscriptions/{sub['id']}/uses", {}, role="cashier")
    drain()
    (module,) = [m for m in _object(fake, card["code"])["textModulesData"] if m["id"] == key]
    assert module["body"].startswith("Осталось: 19 · до ")
