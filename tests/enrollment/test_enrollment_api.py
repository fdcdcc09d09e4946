"""Enrolment at the till through the API: the guest's SMS code confirms the phone."""

from __future__ import annotations

from sqlalchemy import select

from enrollment_support import BONUS_RULES, sms_code
from loyalwallet import db
from loyalwallet.cards.models import Card
from loyalwallet.customers.models import Consent
from loyalwallet.enrollment import rules
from support import new_shop, random_phone


def test_till_enrollment_with_code(client, shop) -> None:
    pid = shop.program("bonus", BONUS_RULES)
    phone = random_phone()
    body = {"program_id": pid, "phone": phone, "name": "Gleb", "personal_data_consent": True}
    refused = shop.post("/api/v1/enrollments", {**body, "personal_data_consent": False}, role="cashier")
    assert refused.status_code == 422 and refused.json()["code"] == "consent_required"
    bad = shop.post("/api/v1/enrollments", {**body, "phone": "123"}, role="cashier")
    assert bad.status_code == 422 and bad.json()["fields"] == {"phone": rules.ERR_PHONE}

    r = shop.post("/api/v1/enrollments", body, role="cashier")
    assert r.status_code == 202, r.text
    pending = r.json()
    assert pending["status"] == "pending" and pending["tries_left"] == 5 and "***" in pending["phone"]
    token = pending["token"]
    code = sms_code(phone)
    other = new_shop(client, "Other")
    assert other.post(f"/api/v1/enrollments/{token}/confirm", {"code": code}).status_code == 404
    wrong = shop.post(
        f"/api/v1/enrollments/{token}/confirm", {"code": "000000" if code != "000000" else "111111"}
    )
    assert (
        wrong.status_code == 422 and wrong.json()["code"] == "otp_invalid" and wrong.json()["tries_left"] == 4
    )
    again = shop.post(f"/api/v1/enrollments/{token}/resend")
    assert again.status_code == 429 and again.json()["code"] == "rate_limited"
    r = shop.post(f"/api/v1/enrollments/{token}/confirm", {"code": code}, role="cashier")
    assert r.status_code == 201, r.text
    card = r.json()
    assert card["balance"] == 100 and card["created"] is True
    with db.read() as session:
        row = session.scalar(select(Card).where(Card.code == card["code"]))
        assert row is not None and row.channel == "pos"
        channels = set(session.scalars(select(Consent.channel).where(Consent.customer_id == row.customer_id)))
        assert channels == {"api"}
    # The same phone again: the existing card, 200.
    token2 = shop.post("/api/v1/enrollments", body).json()["token"]
    r = shop.post(f"/api/v1/enrollments/{token2}/confirm", {"code": sms_code(phone)})
    assert r.status_code == 200 and r.json()["code"] == card["code"] and r.json()["created"] is False
