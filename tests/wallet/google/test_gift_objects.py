"""A gift certificate in Google Wallet: the merchant's giftCardClass and the certificate's
giftCardObject (checked by the fake against Google's published description), patched
through the outbox when the balance changes; the save link carries the object; the
certificate page offers the button only where Google Wallet works."""

from __future__ import annotations

import json
from typing import Any

import jwt

from wallet.google.helpers import drain


def _object(fake: Any, token: str) -> dict[str, Any]:
    (obj,) = [o for oid, o in fake.gift_objects.items() if oid.endswith(token)]
    return obj


def test_the_object_follows_the_balance(gshop) -> None:
    shop, fake = gshop.shop, gshop.fake
    shop.program("bonus")
    cert = shop.post("/api/v1/certificates", {"amount": 300_000, "message": "С днём рождения!"}).json()
    token = cert["web_url"].rsplit("/", 1)[-1]
    drain()
    obj = _object(fake, token)
    assert obj["balance"] == {"micros": str(300_000 * 10_000), "currencyCode": "RUB"}
    assert obj["state"] == "ACTIVE" and obj["barcode"]["value"] == cert["code"]
    assert obj["cardNumber"] == cert["code_display"] and cert["code"] not in obj["id"]
    assert obj["validTimeInterval"]["end"]["date"][:10] == cert["expires_at"][:10]
    cls = fake.gift_classes[obj["classId"]]
    assert cls["merchantName"] == "Test café" and cls["reviewStatus"] == "APPROVED"
    assert cls["programLogo"]["sourceUri"]["uri"].startswith("http://testserver/assets/")

    shop.post(f"/api/v1/certificates/{cert['code']}/redemptions", {"amount": 120_000}, role="cashier")
    drain()
    assert _object(fake, token)["balance"]["micros"] == str(180_000 * 10_000)
    shop.post(f"/api/v1/certificates/{cert['code']}/void", {"reason": "returned"}, role="manager")
    drain()
    voided = _object(fake, token)
    assert voided["state"] == "INACTIVE" and voided["balance"]["micros"] == "0"
    assert not [c for c in fake.calls if "giftCard" in c.path and c.status == 400]  # every body was valid


def test_the_save_link_and_the_button(gshop) -> None:
    shop = gshop.shop
    cert = shop.post("/api/v1/certificates", {"amount": 50_000}).json()
    token = cert["web_url"].rsplit("/", 1)[-1]
    page = shop.client.get(f"/g/{token}", headers={"user-agent": "Android"})
    assert f'href="/g/{token}/google"' in page.text
    r = shop.client.get(f"/g/{token}/google", follow_redirects=False)
    assert r.status_code == 303, r.text
    claims = jwt.decode(
        r.headers["location"].rsplit("/", 1)[-1], gshop.public_key, algorithms=["RS256"], audience="google"
    )
    assert claims["typ"] == "savetowallet"
    (obj,) = claims["payload"]["giftCardObjects"]
    assert obj["balance"]["micros"] == str(50_000 * 10_000) and obj["id"].endswith(token)
    assert json.dumps(claims).count(cert["code"]) >= 1  # the barcode the till scans
    assert shop.client.get("/g/nope-nope-nope/google").status_code == 404
