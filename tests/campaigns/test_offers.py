"""Offers and coupons: issued to a card or printed as anonymous codes, redeemed at the
checkout with `coupon`, refused when used up, expired or revoked."""

from __future__ import annotations

import csv
import datetime as dt
import io

from sqlalchemy import update

from loyalwallet import db
from loyalwallet.cards.models import Coupon
from support import Shop


def _offer(shop: Shop, **extra) -> dict:
    body = {"name": "Десять процентов", "kind": "percent_off", "pct": 10, **extra}
    r = shop.post("/api/v1/offers", body, role="manager")
    assert r.status_code == 201, r.text
    return r.json()


def test_bad_offers_are_refused(shop: Shop) -> None:
    for body in (
        {"name": "x", "kind": "percent_off"},
        {"name": "x", "kind": "percent_off", "pct": 150},
        {"name": "x", "kind": "fixed_off", "value": 0},
        {"name": "x", "kind": "bonus_points"},
        {"name": "x", "kind": "fixed_off", "value": 100, "pct": 5},
        {
            "name": "x",
            "kind": "free_item",
            "valid_from": "2030-01-02T00:00:00+03:00",
            "valid_until": "2030-01-01T00:00:00+03:00",
        },
        {"name": "x", "kind": "free_item", "valid_until": "2030-01-01T00:00:00"},
        {"name": "x", "kind": "cashback"},
    ):
        r = shop.post("/api/v1/offers", body)
        assert r.status_code == 422 and r.json()["code"] == "validation_error", (body, r.text)
    assert shop.post("/api/v1/offers", {"name": "x", "kind": "free_item"}, role="cashier").status_code == 403


def test_a_coupon_issued_to_a_card_is_used_once(shop: Shop) -> None:
    program = shop.program("bonus")
    card = shop.card(program)
    offer = _offer(shop, valid_days=30)
    r = shop.post(f"/api/v1/offers/{offer['id']}/issue", {"card": card["code"]}, role="manager")
    assert r.status_code == 201, r.text
    coupon = r.json()
    assert coupon["card"] == card["code"] and coupon["state"] == "available" and coupon["value"] == 1000
    until = dt.datetime.fromisoformat(coupon["valid_until"])
    assert dt.timedelta(days=29) < until - db.utcnow() <= dt.timedelta(days=30)
    shown = shop.get(f"/api/v1/cards/{card['code']}").json()["rewards"]
    assert [c["code"] for c in shown] == [coupon["code"]]

    bought = shop.buy(card["code"], 20_000, coupon=coupon["code"].lower())
    assert bought["coupon_discount"] == 2_000 and bought["coupon"] == coupon["code"]
    again = shop.post(
        "/api/v1/purchases",
        {"card": card["code"], "amount": 20_000, "coupon": coupon["code"]},
        role="cashier",
    )
    assert again.status_code == 422 and again.json()["code"] == "coupon_invalid"
    assert "already used" in again.json()["detail"]
    assert shop.get(f"/api/v1/coupons/{coupon['code']}", role="cashier").json()["state"] == "used"
    # Another guest cannot use a coupon issued to this card.
    other = shop.card(program)
    coupon2 = shop.post(f"/api/v1/offers/{offer['id']}/issue", {"card": card["code"]}, role="manager").json()
    r = shop.post(
        "/api/v1/purchases",
        {"card": other["code"], "amount": 20_000, "coupon": coupon2["code"]},
        role="cashier",
    )
    assert r.json()["code"] == "coupon_invalid"
    stats = shop.get(f"/api/v1/offers/{offer['id']}").json()["stats"]
    assert stats == {"issued": 2, "uses": 1, "open": 1, "revoked": 0}


def test_an_expired_or_revoked_coupon_is_refused(shop: Shop) -> None:
    program = shop.program("bonus")
    card = shop.card(program)
    offer = _offer(shop)
    first = shop.post(f"/api/v1/offers/{offer['id']}/issue", {"card": card["code"]}, role="manager").json()
    second = shop.post(f"/api/v1/offers/{offer['id']}/issue", {"card": card["code"]}, role="manager").json()
    with db.transaction() as session:
        session.execute(
            update(Coupon)
            .where(Coupon.code == first["code"])
            .values(valid_until=db.utcnow() - dt.timedelta(minutes=1))
        )
    r = shop.post(
        "/api/v1/purchases", {"card": card["code"], "amount": 10_000, "coupon": first["code"]}, role="cashier"
    )
    assert r.json()["code"] == "coupon_invalid" and "expired" in r.json()["detail"]
    assert shop.get(f"/api/v1/coupons/{first['code']}").json()["state"] == "expired"

    assert (
        shop.post(
            f"/api/v1/coupons/{second['code']}/revoke", {"reason": "by mistake"}, role="manager"
        ).status_code
        == 200
    )
    r = shop.post(
        "/api/v1/purchases",
        {"card": card["code"], "amount": 10_000, "coupon": second["code"]},
        role="cashier",
    )
    assert r.json()["code"] == "coupon_invalid"
    assert shop.get(f"/api/v1/coupons/{second['code']}").json()["state"] == "revoked"
    # Nothing was written by the refused purchases.
    assert shop.get(f"/api/v1/cards/{card['code']}").json()["visits"] == 0


def test_printed_anonymous_codes(shop: Shop) -> None:
    program = shop.program("bonus")
    offer = _offer(
        shop,
        name="Сертификат 500 ₽",
        kind="fixed_off",
        pct=None,
        value=50_000,
        uses_per_coupon=2,
        max_issued=6,
    )
    r = shop.post(f"/api/v1/offers/{offer['id']}/batches", {"count": 5, "name": "Flyers"}, role="manager")
    assert r.status_code == 201, r.text
    batch = r.json()
    assert batch["count"] == 5 and len(batch["pdf_urls"]) == 1

    r = shop.get(batch["csv_url"], role="manager")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert len(rows) == 5 and all(len(row["code"]) == 10 for row in rows)
    assert rows[0]["printed_code"] == rows[0]["code"][:5] + "-" + rows[0]["code"][5:]
    assert rows[0]["name"] == "Сертификат 500 ₽"

    # Each code also has its coupon-style pass for Apple Wallet.
    from loyalwallet.wallet.apple import credentials

    with db.transaction() as session:
        credentials.ensure_development_certificate(session)
    url = rows[0]["apple_wallet_url"]
    assert url.startswith("http://testserver/") and url.endswith("/pass.pkpass")
    pkpass = shop.client.get(url.removeprefix("http://testserver"))
    assert pkpass.status_code == 200 and pkpass.headers["content-type"] == "application/vnd.apple.pkpass"
    assert shop.get(f"/api/v1/coupons/{rows[0]['code']}").json()["apple_pass_url"] == url

    pdf = shop.get(batch["pdf_urls"][0], role="manager")
    assert (
        pdf.status_code == 200
        and pdf.content.startswith(b"%PDF")
        and pdf.headers["content-type"] == "application/pdf"
    )

    # Any guest may use a printed code, typed as printed (with the dash), twice.
    printed = rows[0]["printed_code"]
    for _ in range(2):
        bought = shop.buy(shop.card(program)["code"], 80_000, coupon=printed)
        assert bought["coupon_discount"] == 50_000
    r = shop.post(
        "/api/v1/purchases",
        {"card": shop.card(program)["code"], "amount": 80_000, "coupon": printed},
        role="cashier",
    )
    assert r.json()["code"] == "coupon_invalid"

    # max_issued 6: one more code fits, two do not.
    r = shop.post(f"/api/v1/offers/{offer['id']}/batches", {"count": 2}, role="manager")
    assert r.status_code == 409 and r.json()["code"] == "offer_exhausted"
    assert shop.post(f"/api/v1/offers/{offer['id']}/batches", {"count": 1}, role="manager").status_code == 201
    listed = shop.get(f"/api/v1/coupons?batch_id={batch['id']}", role="manager").json()["items"]
    assert len(listed) == 5


def test_bonus_points_coupon_and_archived_offer(shop: Shop) -> None:
    program = shop.program("bonus")
    card = shop.card(program)
    offer = _offer(shop, name="+300", kind="bonus_points", pct=None, value=300)
    coupon = shop.post(f"/api/v1/offers/{offer['id']}/issue", {"card": card["code"]}, role="manager").json()
    bought = shop.buy(card["code"], 10_000, coupon=coupon["code"])
    assert bought["points_accrued"] == 5 + 300  # 5 % cashback on 100 roubles + the coupon
    r = shop.call("PATCH", f"/api/v1/offers/{offer['id']}", role="manager", json={"status": "archived"})
    assert r.status_code == 200 and r.json()["status"] == "archived" and r.json()["kind"] == "bonus_points"
    r = shop.post(f"/api/v1/offers/{offer['id']}/issue", {"card": card["code"]}, role="manager")
    assert r.status_code == 409


def test_offers_are_scoped_by_merchant(shop: Shop, client) -> None:
    from support import new_shop

    offer = _offer(shop)
    other = new_shop(client)
    assert other.get(f"/api/v1/offers/{offer['id']}").status_code == 404
    assert other.post(f"/api/v1/offers/{offer['id']}/batches", {"count": 1}).status_code == 404
    coupon = shop.post(f"/api/v1/offers/{offer['id']}/batches", {"count": 1}).json()
    code = shop.get(f"/api/v1/coupons?batch_id={coupon['id']}").json()["items"][0]["code"]
    assert other.get(f"/api/v1/coupons/{code}").status_code == 404
