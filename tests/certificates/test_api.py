"""Gift certificates with a balance, as a POS and a manager meet them over HTTP: sold with
an unguessable code, spent in part or in full in purchases (after the discount, the coupon
and the points), refunds put the money back, expiry, cancelling, bad input."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

from sqlalchemy import func, select, update

from loyalwallet import db
from loyalwallet.certificates import ledger
from loyalwallet.certificates.models import GiftCertificate
from loyalwallet.certificates.rules import looks_like_code
from loyalwallet.outbox.models import OutboxMessage
from support import Shop, new_shop

BONUS = {"tiers": [{"name": "A", "min_spend": 0, "cashback_pct": 10}], "max_redeem_pct": 50}


def sell(shop: Shop, amount: int = 300_000, role: str = "cashier", **extra) -> dict:
    r = shop.post("/api/v1/certificates", {"amount": amount, **extra}, role=role)
    assert r.status_code == 201, r.text
    return r.json()


def problem(r, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == code, r.text
    return r.json()


def test_sold_with_an_unguessable_code_and_sealed_contacts(shop: Shop) -> None:
    cert = sell(
        shop,
        buyer_contact="+79161234567",
        recipient_contact="friend@example.com",
        recipient_name="Маша",
        design="birthday",
        message="С днём рождения!",
    )
    assert looks_like_code(cert["code"]) and cert["code_display"].replace("-", "") == cert["code"]
    assert cert["balance"] == cert["initial_amount"] == 300_000 and cert["status"] == "active"
    expires = dt.datetime.fromisoformat(cert["expires_at"])
    assert dt.timedelta(days=364) < expires - db.utcnow() <= dt.timedelta(days=365)
    assert cert["web_url"].startswith("http://testserver/g/")
    assert {sell(shop, 1000)["code"] for _ in range(20)}.isdisjoint({cert["code"]})
    got = shop.get(f"/api/v1/certificates/{cert['code_display'].lower()}", role="cashier").json()
    assert got["recipient_contact"] == "friend@example.com" and got["recipient_name"] == "Маша"
    with db.read() as session:
        row = session.scalar(select(GiftCertificate).where(GiftCertificate.id == cert["id"]))
        assert row is not None and row.recipient_enc is not None
        assert b"friend@example.com" not in row.recipient_enc and b"+7916" not in (row.buyer_enc or b"")
    entries = shop.get(f"/api/v1/certificates/{cert['code']}/entries").json()["items"]
    assert [(e["kind"], e["amount"]) for e in entries] == [("issue", 300_000)]


def test_spent_in_part_then_in_full_after_discount_coupon_and_points(shop: Shop) -> None:
    code = shop.card(shop.program("bonus", BONUS))["code"]
    shop.post(f"/api/v1/cards/{code}/adjustments", {"points": 1000, "reason": "test balance"}, role="manager")
    offer = shop.post(
        "/api/v1/offers", {"name": "10%", "kind": "percent_off", "pct": 10}, role="manager"
    ).json()
    coupon = shop.post(f"/api/v1/offers/{offer['id']}/issue", {"card": code}, role="manager").json()
    cert = sell(shop, 100_000)
    body = {
        "card": code,
        "amount": 50_000,
        "coupon": coupon["code"],
        "redeem_points": 100,
        "certificate": cert["code"],
    }
    quote = shop.post("/api/v1/purchases/quote", body, role="cashier").json()
    # 500.00 - 10% coupon = 450.00; 100 points pay 100.00 -> 350.00 left; the certificate pays it all.
    assert quote["coupon_discount"] == 5_000 and quote["to_pay"] == 35_000
    assert quote["certificate_paid"] == 35_000 and quote["to_collect"] == 0
    bought = shop.buy(code, 50_000, **{k: v for k, v in body.items() if k not in ("card", "amount")})
    assert bought["certificate_paid"] == 35_000 and bought["to_collect"] == 0
    assert bought["certificate"]["balance"] == 65_000
    # Points accrue on the check as if paid in cash (10% of 350.00 RUB = 35 points).
    assert bought["points_accrued"] == 35
    # Then an exact amount, part of a check.
    second = shop.buy(code, 100_000, certificate=cert["code"], certificate_amount=20_000)
    assert second["certificate_paid"] == 20_000 and second["to_collect"] == 80_000
    # Then the rest: it pays what it holds and the till collects the difference.
    third = shop.buy(code, 100_000, certificate=cert["code"])
    assert third["certificate_paid"] == 45_000 and third["to_collect"] == 55_000
    assert third["certificate"]["balance"] == 0
    r = shop.post(
        "/api/v1/purchases", {"card": code, "amount": 1_000, "certificate": cert["code"]}, role="cashier"
    )
    problem(r, 422, "certificate_insufficient")
    # A purchase without a certificate answers as it always did.
    assert "certificate_paid" not in shop.buy(code, 1_000)


def test_refunds_put_the_money_back_in_proportion_and_never_more(shop: Shop) -> None:
    code = shop.card(shop.program("bonus", BONUS))["code"]
    cert = sell(shop, 100_000)
    p = shop.buy(code, 30_000, certificate=cert["code"], certificate_amount=10_000)
    assert p["to_collect"] == 20_000
    r = shop.post(f"/api/v1/purchases/{p['id']}/refunds", {"amount": 10_001}, role="cashier")
    assert r.status_code == 201, r.text
    # 10_001 of 30_000 refunded: the certificate gets floor(10_000 * 10_001 / 30_000) = 3_333.
    assert r.json()["certificate_returned"] == 3_333 and r.json()["cash_returned"] == 10_001 - 3_333
    r = shop.post(f"/api/v1/purchases/{p['id']}/refunds", {}, role="cashier")
    assert r.json()["certificate_returned"] == 10_000 - 3_333
    assert r.json()["certificate"]["balance"] == 100_000
    problem(
        shop.post(f"/api/v1/purchases/{p['id']}/refunds", {}, role="cashier"), 422, "refund_exceeds_purchase"
    )
    assert shop.get(f"/api/v1/certificates/{cert['code']}").json()["balance"] == 100_000
    with db.read() as session:
        assert ledger.check_ledger(session) == []


def test_bad_input_writes_nothing(shop: Shop, client) -> None:
    code = shop.card(shop.program("bonus", BONUS))["code"]
    cert = sell(shop, 10_000)

    def attempt(status: int, err: str, **extra) -> dict:
        r = shop.post("/api/v1/purchases", {"card": code, "amount": 50_000, **extra}, role="cashier")
        return problem(r, status, err)

    assert (
        attempt(422, "certificate_insufficient", certificate=cert["code"], certificate_amount=10_001)[
            "balance"
        ]
        == 10_000
    )
    attempt(422, "validation_error", certificate=cert["code"], certificate_amount=50_001)
    attempt(422, "validation_error", certificate_amount=100)
    attempt(404, "not_found", certificate="GAAAA-BBBB-CCCC-DDD")
    # Another merchant's certificate does not exist for this one.
    other = new_shop(client, "Другое кафе")
    foreign = sell(other, 10_000)
    attempt(404, "not_found", certificate=foreign["code"])
    problem(shop.get(f"/api/v1/certificates/{foreign['code']}"), 404, "not_found")
    for body in (
        {"amount": 0},
        {"amount": 100.5},  # (an integral 100.0 is read as 100 by the input guard)
        {"amount": "100"},
        {"amount": 100, "valid_days": 0},
        {"amount": 1, "x": 1},
    ):
        problem(shop.post("/api/v1/certificates", body), 422, "validation_error")
    # Expired (before the sweep has run), then written off by the sweep.
    with db.transaction() as session:
        session.execute(
            update(GiftCertificate)
            .where(GiftCertificate.id == cert["id"])
            .values(expires_at=db.utcnow() - dt.timedelta(seconds=1))
        )
    attempt(422, "certificate_expired", certificate=cert["code"])
    problem(
        shop.post(f"/api/v1/certificates/{cert['code']}/redemptions", {"amount": 100}, role="cashier"),
        422,
        "certificate_expired",
    )
    assert ledger.expire_due() >= 1
    got = shop.get(f"/api/v1/certificates/{cert['code']}").json()
    assert got["status"] == "expired" and got["balance"] == 0
    assert shop.get("/api/v1/purchases", params={"card": code}).json()["items"] == []
    entries = shop.get(f"/api/v1/certificates/{cert['code']}/entries").json()["items"]
    assert [(e["kind"], e["amount"]) for e in entries] == [("expiry", -10_000), ("issue", 10_000)]
    with db.read() as session:
        assert ledger.check_ledger(session) == []


def test_spent_without_a_card_refunded_and_cancelled(shop: Shop) -> None:
    cert = sell(shop, 50_000)
    url = f"/api/v1/certificates/{cert['code']}/redemptions"
    r = shop.post(
        url, {"amount": 20_000, "external_id": "check-1"}, role="cashier", headers={"Idempotency-Key": "k1"}
    )
    assert r.status_code == 201 and r.json()["certificate"]["balance"] == 30_000
    again = shop.post(
        url, {"amount": 20_000, "external_id": "check-1"}, role="cashier", headers={"Idempotency-Key": "k1"}
    )
    assert again.headers.get("Idempotent-Replayed") == "true" and again.json() == r.json()
    problem(shop.post(url, {"amount": 30_001}, role="cashier"), 422, "certificate_insufficient")
    spend = r.json()["id"]
    refunds = f"{url}/{spend}/refunds"
    problem(shop.post(refunds, {"amount": 20_001}, role="cashier"), 422, "refund_exceeds_purchase")
    assert shop.post(refunds, {"amount": 5_000}, role="cashier").json()["refundable"] == 15_000
    assert shop.post(refunds, None, role="cashier").json()["certificate"]["balance"] == 50_000
    problem(shop.post(refunds, None, role="cashier"), 422, "refund_exceeds_purchase")
    problem(shop.post(f"{url}/999999999/refunds", None, role="cashier"), 404, "not_found")
    problem(
        shop.post(f"/api/v1/certificates/{cert['code']}/void", {"reason": "lost"}, role="cashier"),
        403,
        "forbidden",
    )
    voided = shop.post(
        f"/api/v1/certificates/{cert['code']}/void", {"reason": "returned at the till"}, role="manager"
    )
    assert voided.status_code == 200 and voided.json()["status"] == "void" and voided.json()["balance"] == 0
    problem(shop.post(url, {"amount": 1}, role="cashier"), 409, "certificate_unavailable")
    report = shop.get("/api/v1/certificates/report", role="manager").json()
    assert report["sold"] == 50_000 and report["spent"] == 20_000 and report["refunded"] == 20_000
    assert report["voided"] == 50_000 and report["outstanding"] == 0


def test_report_events_and_openapi(shop: Shop, client) -> None:
    a = sell(shop, 100_000)
    sell(shop, 40_000)
    shop.post(f"/api/v1/certificates/{a['code']}/redemptions", {"amount": 30_000}, role="cashier")
    report = shop.get("/api/v1/certificates/report", role="manager").json()
    assert (report["sold"], report["sold_count"], report["spent"]) == (140_000, 2, 30_000)
    assert (report["outstanding"], report["outstanding_count"], report["expired"]) == (110_000, 2, 0)
    problem(shop.get("/api/v1/certificates/report", role="cashier"), 403, "forbidden")
    with db.read() as session:
        events = [
            m.payload
            for m in session.scalars(
                select(OutboxMessage).where(
                    OutboxMessage.merchant_id == shop.merchant_id, OutboxMessage.topic == "event"
                )
            )
        ]
    names = [e["name"] for e in events]
    assert names.count("certificate.sold") == 2 and names.count("certificate.spent") == 1
    # Webhooks carry neither the code (a bearer secret) nor contacts.
    assert all(a["code"] not in str(e) for e in events)
    paths = client.get("/openapi.json").json()["paths"]
    assert "/api/v1/certificates" in paths and "/api/v1/certificates/{code}/redemptions" in paths
    body = client.get("/openapi.json").json()["components"]["schemas"]["PurchaseIn"]["properties"]
    assert "certificate" in body and "certificate_amount" in body


def test_check_ledger_command_sees_a_broken_certificate(shop: Shop, settings) -> None:
    cert = sell(shop, 10_000)
    env = {"LOYALWALLET_DATABASE_URL": settings.database_url, "LOYALWALLET_DATA_DIR": str(settings.data_dir)}
    import os

    run = lambda: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "loyalwallet.cli", "check-ledger"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run().returncode == 0
    with db.transaction() as session:
        session.execute(
            update(GiftCertificate).where(GiftCertificate.id == cert["id"]).values(balance=10_001)
        )
    try:
        out = run()
        assert (
            out.returncode == 1
            and "gift certificate" in out.stdout
            and "10001 != entries 10000" in out.stdout
        )
        assert cert["code"] not in out.stdout
    finally:
        with db.transaction() as session:
            session.execute(
                update(GiftCertificate).where(GiftCertificate.id == cert["id"]).values(balance=10_000)
            )


def test_daily_spend_limit_alerts_then_blocks(shop: Shop) -> None:
    cert = sell(shop, 500_000)
    url = f"/api/v1/certificates/{cert['code']}/redemptions"
    rule = {"max_certificate_spend_per_day": {"action": "alert", "amount": 100_000}}
    assert shop.call("PUT", "/api/v1/fraud/rules", json=rule).status_code == 200
    assert shop.post(url, {"amount": 60_000}, role="cashier").status_code == 201
    assert shop.post(url, {"amount": 60_000}, role="cashier").status_code == 201  # 1 200 ₽ > 1 000 ₽: alert
    alerts = shop.get("/api/v1/alerts", role="manager").json()["items"]
    assert [a["rule"] for a in alerts] == ["max_certificate_spend_per_day"]
    assert cert["code"] not in str(alerts)
    rule["max_certificate_spend_per_day"]["action"] = "block"
    shop.call("PUT", "/api/v1/fraud/rules", json=rule)
    code = shop.card(shop.program("bonus", BONUS))["code"]
    r = shop.post(
        "/api/v1/purchases", {"card": code, "amount": 1_000, "certificate": cert["code"]}, role="cashier"
    )
    problem(r, 429, "fraud_limit")
    assert shop.get(f"/api/v1/certificates/{cert['code']}").json()["balance"] == 380_000
    assert shop.get("/api/v1/purchases", params={"card": code}).json()["items"] == []


def test_the_link_is_texted_to_the_recipient(shop: Shop) -> None:
    from loyalwallet.enrollment.sms import console
    from loyalwallet.outbox import worker

    cert = sell(shop, 300_000, recipient_contact="8 (916) 555-12-34", send_to_recipient=True)
    assert cert["sent"] == "sms"
    worker.drain()
    sms = console.last_to("+79165551234")
    assert sms is not None and cert["web_url"] in sms.text and "3\u00a0000\u00a0₽" in sms.text
    r = shop.post(
        "/api/v1/certificates",
        {"amount": 1000, "recipient_contact": "nobody at all", "send_to_recipient": True},
    )
    problem(r, 422, "validation_error")  # neither a phone number nor an e-mail address
    with db.read() as session:
        n = session.scalar(
            select(func.count())
            .select_from(GiftCertificate)
            .where(GiftCertificate.merchant_id == shop.merchant_id)
        )
    assert n == 1  # the refused sale wrote nothing
