"""Prepaid subscriptions as a POS and a cashier meet them over HTTP: a programme sold at
the till, units used in purchases (one covered cup paid) and without, at most N a day,
renewal, refund of the unused part, the card's wallets told, bad input refused with
stable codes and nothing written."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update

from loyalwallet import db
from loyalwallet.merchants.models import Merchant
from loyalwallet.outbox.models import OutboxMessage
from loyalwallet.subscriptions import ledger
from loyalwallet.subscriptions.models import Subscription, SubscriptionEntry
from support import Shop, new_shop

CUP = {"sku": "CUP", "category": "coffee", "price": 25_000}
CAKE = {"sku": "CAKE", "category": "pastry", "price": 30_000}


def plan(shop: Shop, **extra) -> dict:
    body = {"name": "20 cups a month", "units": 20, "period_days": 30, "price": 300_000, **extra}
    r = shop.post("/api/v1/subscription-plans", body, role="manager")
    assert r.status_code == 201, r.text
    return r.json()


def sell(shop: Shop, plan_id: int, card: str) -> dict:
    r = shop.post("/api/v1/subscriptions", {"plan_id": plan_id, "card": card}, role="cashier")
    assert r.status_code == 201, r.text
    return r.json()


def problem(r, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == code, r.text
    return r.json()


def _entries() -> int:
    with db.read() as session:
        return int(session.scalar(select(func.count()).select_from(SubscriptionEntry)) or 0)


def _events(merchant_id: int) -> list[str]:
    with db.read() as session:
        rows = session.scalars(
            select(OutboxMessage.payload).where(
                OutboxMessage.merchant_id == merchant_id, OutboxMessage.topic == "event"
            )
        ).all()
    return [r["name"] for r in rows]


def test_sold_used_in_a_purchase_and_shown_on_the_card(shop: Shop) -> None:
    p = plan(shop, daily_limit=2, covers={"categories": ["coffee"]})
    code = shop.card(shop.program("bonus"))["code"]
    sub = sell(shop, p["id"], code)
    assert sub["units_left"] == 20 and sub["status"] == "active" and sub["paid"] == 300_000
    ends = dt.datetime.fromisoformat(sub["ends_at"])
    assert dt.timedelta(days=29) < ends - db.utcnow() <= dt.timedelta(days=30)
    body = {"card": code, "amount": 55_000, "items": [CUP, CAKE], "subscription": sub["id"]}
    quote = shop.post("/api/v1/purchases/quote", body, role="cashier")
    assert quote.status_code == 200, quote.text
    assert quote.json()["subscription_paid"] == 25_000 and quote.json()["to_collect"] == 30_000
    assert shop.get(f"/api/v1/subscriptions/{sub['id']}").json()["units_left"] == 20  # a quote writes nothing
    r = shop.post("/api/v1/purchases", body, role="cashier")
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["subscription_paid"] == 25_000 and out["to_collect"] == 30_000
    assert out["subscription"]["units_left"] == 19 and out["subscription"]["used_today"] == 1
    # The card's own list, and the web card shows what is left and until when.
    items = shop.get(f"/api/v1/cards/{code}/subscriptions", role="cashier").json()["items"]
    assert [i["units_left"] for i in items] == [19]
    page = shop.client.get(out["card"]["web_card_url"].replace("http://testserver", ""))
    # The card shows the end in the merchant's time zone (Moscow: the next day after 21:00 UTC).
    with db.read() as session:
        zone = session.scalar(select(Merchant.timezone).where(Merchant.id == shop.merchant_id))
    local_end = ends.astimezone(ZoneInfo(zone or "UTC"))
    assert page.status_code == 200 and "19" in page.text and f"{local_end:%d.%m.%Y}"[:5] in page.text
    names = _events(shop.merchant_id)
    assert "subscription.sold" in names and "subscription.used" in names


def test_daily_limit_expired_foreign_and_not_covered_write_nothing(shop: Shop) -> None:
    p = plan(shop, daily_limit=1, covers={"skus": ["CUP"]})
    pid = shop.program("bonus")
    code, other = shop.card(pid)["code"], shop.card(pid)["code"]
    sub = sell(shop, p["id"], code)
    assert shop.post(f"/api/v1/subscriptions/{sub['id']}/uses", {}, role="cashier").status_code == 201
    before = _entries()
    twice = shop.post(f"/api/v1/subscriptions/{sub['id']}/uses", {}, role="cashier")
    problem(twice, 422, "subscription_daily_limit")
    in_purchase = shop.post(
        "/api/v1/purchases", {"card": code, "amount": 25_000, "items": [CUP], "subscription": sub["id"]},
        role="cashier",
    )  # fmt: skip
    problem(in_purchase, 422, "subscription_daily_limit")
    foreign = shop.post(
        "/api/v1/purchases", {"card": other, "amount": 25_000, "items": [CUP], "subscription": sub["id"]},
        role="cashier",
    )  # fmt: skip
    problem(foreign, 422, "subscription_foreign")
    stranger = new_shop(shop.client, "Elsewhere")
    scode = stranger.card(stranger.program("bonus"))["code"]
    problem(
        stranger.post(
            "/api/v1/purchases", {"card": scode, "amount": 100, "subscription": sub["id"]}, role="cashier"
        ),
        404,
        "not_found",
    )
    problem(stranger.post(f"/api/v1/subscriptions/{sub['id']}/uses", {}, role="cashier"), 404, "not_found")
    fresh = sell(shop, plan(shop, name="Any", covers={"skus": ["CUP"]})["id"], code)
    problem(
        shop.post(
            "/api/v1/purchases", {"card": code, "amount": 30_000, "items": [CAKE], "subscription": fresh["id"]},
            role="cashier",
        ),
        422,
        "subscription_not_covered",
    )  # fmt: skip
    with db.transaction() as session:
        session.execute(
            update(Subscription).where(Subscription.id == fresh["id"]).values(ends_at=db.utcnow())
        )
    problem(
        shop.post(f"/api/v1/subscriptions/{fresh['id']}/uses", {}, role="cashier"),
        422,
        "subscription_expired",
    )
    assert _entries() == before + 1  # only the second sale wrote
    problem(shop.post("/api/v1/subscriptions", {"plan_id": p["id"], "card": code}, role="cashier"), 409,
            "subscription_active")  # fmt: skip
    bad = shop.post("/api/v1/subscription-plans", {"name": "x", "units": 0, "period_days": 30, "price": 1},
                    role="manager")  # fmt: skip
    assert bad.status_code == 422 and bad.json()["code"] == "validation_error"
    # Expiry writes the rest off; the ledger holds.
    assert ledger.expire_due() >= 1
    assert shop.get(f"/api/v1/subscriptions/{fresh['id']}").json()["units_left"] == 0
    with db.read() as session:
        assert ledger.check_ledger(session) == []


def test_renewal_and_refund_of_the_unused_part(shop: Shop) -> None:
    p = plan(shop, units=10, price=100_000)
    code = shop.card(shop.program("bonus"))["code"]
    sub = sell(shop, p["id"], code)
    for _ in range(3):
        assert shop.post(f"/api/v1/subscriptions/{sub['id']}/uses", {}, role="cashier").status_code == 201
    renewed = shop.post(f"/api/v1/subscriptions/{sub['id']}/renewals", {}, role="cashier").json()
    assert renewed["units_left"] == 17 and renewed["units_total"] == 20 and renewed["paid"] == 200_000
    assert dt.datetime.fromisoformat(renewed["ends_at"]) > dt.datetime.fromisoformat(sub["ends_at"])
    assert renewed["refundable"] == 200_000 * 17 // 20
    before = _entries()
    too_much = shop.post(f"/api/v1/subscriptions/{sub['id']}/refunds", {"amount": 200_001}, role="cashier")
    problem(too_much, 422, "subscription_refund_too_large")
    assert _entries() == before
    done = shop.post(f"/api/v1/subscriptions/{sub['id']}/refunds", {}, role="cashier")
    assert done.status_code == 201, done.text
    assert done.json()["refunded"] == 170_000 and done.json()["units_cancelled"] == 17
    assert done.json()["subscription"]["status"] == "refunded"
    problem(shop.post(f"/api/v1/subscriptions/{sub['id']}/uses", {}, role="cashier"), 409,
            "subscription_unavailable")  # fmt: skip
    problem(shop.post(f"/api/v1/subscriptions/{sub['id']}/refunds", {}, role="cashier"), 409,
            "subscription_unavailable")  # fmt: skip
    none = sell(shop, plan(shop, name="No refunds", refund_policy="none")["id"], code)
    r = shop.post(f"/api/v1/subscriptions/{none['id']}/refunds", {}, role="cashier")
    assert r.json()["refunded"] == 0
    report = shop.get("/api/v1/subscriptions/report").json()
    assert report["sold_count"] == 2 and report["renewed_count"] == 1 and report["uses"] == 3
    assert report["revenue"] == 100_000 * 2 + 300_000 - 170_000
    names = _events(shop.merchant_id)
    assert names.count("subscription.renewed") == 1 and names.count("subscription.refunded") == 2
    spec = shop.client.get("/openapi.json").json()["paths"]
    assert "/api/v1/subscriptions/{subscription_id}/refunds" in spec and "/api/v1/subscription-plans" in spec


def test_a_fully_refunded_purchase_gives_its_unit_back(shop: Shop) -> None:
    p = plan(shop, daily_limit=1)
    code = shop.card(shop.program("bonus"))["code"]
    sub = sell(shop, p["id"], code)
    body = {"card": code, "amount": 55_000, "items": [CUP, CAKE], "subscription": sub["id"]}
    bought = shop.post("/api/v1/purchases", body, role="cashier").json()
    back = shop.post(f"/api/v1/purchases/{bought['id']}/refunds", {}, role="cashier")
    assert back.status_code == 201, back.text
    out = back.json()
    assert out["subscription_returned"] == 1 and out["subscription"]["units_left"] == 20
    assert out["cash_returned"] == 25_000  # the dearest line (the cake) was paid by the unit, not in cash
    # The day's use was given back: the guest may use it again today.
    assert shop.post(f"/api/v1/subscriptions/{sub['id']}/uses", {}, role="cashier").status_code == 201


def test_check_ledger_command_sees_a_broken_subscription(shop: Shop, settings) -> None:
    p = plan(shop)
    sub = sell(shop, p["id"], shop.card(shop.program("bonus"))["code"])
    with db.transaction() as session:
        session.execute(update(Subscription).where(Subscription.id == sub["id"]).values(units_left=25))
    try:
        env = {
            "LOYALWALLET_DATABASE_URL": settings.database_url,
            "LOYALWALLET_DATA_DIR": str(settings.data_dir),
        }
        done = subprocess.run(
            [sys.executable, "-m", "loyalwallet.cli", "check-ledger"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 1 and f"subscription {sub['id']}" in done.stdout
    finally:
        with db.transaction() as session:
            session.execute(update(Subscription).where(Subscription.id == sub["id"]).values(units_left=20))
