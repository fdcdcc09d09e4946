"""Cards over HTTP: enrolment, lookup by code and by phone, adjustments, blocking."""

from __future__ import annotations

from sqlalchemy import func, select

from loyalwallet import db
from loyalwallet.customers.models import Customer
from support import Shop, random_phone


def test_enrol_returns_the_card_of_the_contract(shop: Shop) -> None:
    pid = shop.program(
        "bonus", {"tiers": [{"name": "Base", "min_spend": 0, "cashback_pct": 5}], "welcome_points": 100}
    )
    r = shop.post(
        "/api/v1/cards", {"program_id": pid, "phone": "8 (916) 555-01-02", "name": "Анна"}, role="cashier"
    )
    assert r.status_code == 201, r.text
    card = r.json()
    for key in (
        "code",
        "program_id",
        "status",
        "balance",
        "stamps",
        "tier",
        "apple_pass_url",
        "google_save_url",
        "web_card_url",
        "created",
    ):
        assert key in card
    assert card["created"] is True
    assert card["balance"] == 100 and card["tier"] == "Base" and card["status"] == "active"
    assert card["customer"]["name"] == "Анна"
    assert card["customer"]["phone"].endswith("01-02")  # masked for cashiers
    assert card["apple_pass_url"].startswith("http://testserver/c/")

    # The same phone in another format: the same card, 200, created false.
    again = shop.post("/api/v1/cards", {"program_id": pid, "phone": "+79165550102"}, role="cashier")
    assert again.status_code == 200
    assert again.json()["code"] == card["code"] and again.json()["created"] is False

    assert shop.get(f"/api/v1/cards/{card['code']}", role="cashier").json()["balance"] == 100
    found = shop.get("/api/v1/cards", params={"phone": "9165550102"}, role="cashier").json()["items"]
    assert [c["code"] for c in found] == [card["code"]]
    assert shop.get("/api/v1/cards", params={"phone": "+79165550199"}, role="cashier").json() == {"items": []}

    history = shop.get(f"/api/v1/cards/{card['code']}/transactions").json()["items"]
    assert [(e["kind"], e["points"]) for e in history] == [("welcome", 100)]


def test_pii_is_encrypted_at_rest(shop: Shop) -> None:
    pid = shop.program("stamp")
    phone = random_phone()
    shop.card(pid, phone, name="Secret Name", email="guest@example.com")
    with db.read() as session:
        row = session.execute(select(Customer).where(Customer.merchant_id == shop.merchant_id)).scalar_one()
        blobs = b"".join(x or b"" for x in (row.phone_enc, row.name_enc, row.email_enc))
    assert phone[2:].encode() not in blobs and b"Secret" not in blobs and b"example" not in blobs
    assert phone not in (row.phone_index or "")


def test_one_guest_many_programs(shop: Shop) -> None:
    bonus, stamp = shop.program("bonus"), shop.program("stamp")
    phone = random_phone()
    a, b = shop.card(bonus, phone), shop.card(stamp, phone)
    assert a["code"] != b["code"]
    items = shop.get("/api/v1/cards", params={"phone": phone}).json()["items"]
    assert {c["program_id"] for c in items} == {bonus, stamp}
    with db.read() as session:
        n = session.scalar(
            select(func.count()).select_from(Customer).where(Customer.merchant_id == shop.merchant_id)
        )
    assert n == 1


def test_adjustment_needs_manager_and_a_reason(shop: Shop) -> None:
    pid = shop.program("bonus")
    code = shop.card(pid)["code"]
    r = shop.post(f"/api/v1/cards/{code}/adjustments", {"points": 50, "reason": "goodwill"}, role="cashier")
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    r = shop.post(f"/api/v1/cards/{code}/adjustments", {"points": 50}, role="manager")
    assert r.status_code == 422 and r.json()["code"] == "validation_error"
    r = shop.post(f"/api/v1/cards/{code}/adjustments", {"points": 50, "reason": "goodwill"}, role="manager")
    assert r.status_code == 201 and r.json()["card"]["balance"] == 50
    r = shop.post(f"/api/v1/cards/{code}/adjustments", {"points": -51, "reason": "typo"}, role="manager")
    assert r.status_code == 422 and r.json()["code"] == "insufficient_points"
    r = shop.post(f"/api/v1/cards/{code}/adjustments", {"points": -20, "reason": "typo"}, role="owner")
    assert r.json()["card"]["balance"] == 30
    kinds = [
        (e["kind"], e["points"], e["reason"])
        for e in shop.get(f"/api/v1/cards/{code}/transactions").json()["items"]
    ]
    assert kinds == [("adjustment", -20, "typo"), ("adjustment", 50, "goodwill")]


def test_stamp_adjustment_issues_rewards(shop: Shop) -> None:
    pid = shop.program("stamp", {"stamps_required": 3})
    code = shop.card(pid)["code"]
    r = shop.post(f"/api/v1/cards/{code}/adjustments", {"stamps": 3, "reason": "paper card"}, role="manager")
    card = r.json()["card"]
    assert card["stamps"] == 1 and len(card["rewards"]) == 1


def test_blocked_card_cannot_buy(shop: Shop) -> None:
    pid = shop.program("bonus")
    code = shop.card(pid)["code"]
    r = shop.call("PATCH", f"/api/v1/cards/{code}", "manager", json={"status": "blocked", "reason": "lost"})
    assert r.status_code == 200 and r.json()["status"] == "blocked"
    r = shop.post("/api/v1/purchases", {"card": code, "amount": 1000}, role="cashier")
    assert r.status_code == 409 and r.json()["code"] == "card_blocked"
    assert shop.get("/api/v1/purchases", params={"card": code}).json()["items"] == []
    shop.call("PATCH", f"/api/v1/cards/{code}", "manager", json={"status": "active"})
    shop.buy(code, 1000)
