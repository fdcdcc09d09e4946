"""Coupon-style passes: a signed public link, voided once used, updated through the card."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from fakes.apns import FakeApns
from fakes.wallet_device import Device, open_pkpass
from loyalwallet import db
from loyalwallet.cards.models import Card, Coupon
from loyalwallet.outbox import worker
from loyalwallet.wallet.apple import service
from loyalwallet.wallet.apple.models import AppleCertificate
from support import Shop


def _coupon(shop: Shop, card_code: str | None, **kw) -> Coupon:  # type: ignore[no-untyped-def]
    with db.transaction() as session:
        card = session.scalar(select(Card).where(Card.code == card_code)) if card_code else None
        coupon = Coupon(
            merchant_id=shop.merchant_id,
            card_id=card.id if card else None,
            program_id=card.program_id if card else None,
            code=kw.pop("code", "SPRING20"),
            kind=kw.pop("kind", "percent_off"),
            value=kw.pop("value", 2000),
            name=kw.pop("name", "Spring offer"),
            source="campaign",
            status="available",
            uses_left=1,
            min_amount=50_000,
            valid_until=db.utcnow() + dt.timedelta(days=30),
            **kw,
        )
        session.add(coupon)
        session.flush()
        session.expunge(coupon)
        return coupon


def test_a_coupon_pass_by_its_signed_link(shop: Shop, dev_root: str) -> None:
    card = shop.card(shop.program("bonus"))
    coupon = _coupon(shop, card["code"])
    url = service.coupon_pass_url(coupon)
    assert url.startswith(f"http://testserver/wallet/apple/coupons/{shop.merchant_id}/SPRING20/")
    r = shop.client.get(url)
    assert r.status_code == 200 and r.headers["content-type"] == "application/vnd.apple.pkpass"
    p = open_pkpass(r.content, dev_root)
    pj = p.pass_json
    assert "coupon" in pj and pj["coupon"]["primaryFields"][0]["value"] == "−20%"
    assert pj["barcodes"][0]["message"] == "SPRING20"
    # The serial is unguessable and tells no one how many coupons were issued.
    serial = pj["serialNumber"]
    assert serial == service.coupon_serial(coupon) and serial != f"cpn.{coupon.id}"
    assert serial.startswith("cpn.") and len(serial) == 4 + 32
    assert "voided" not in pj and pj["sharingProhibited"] is True
    assert p.files["strip@3x.png"][:8] == b"\x89PNG\r\n\x1a\n"
    # A forged or foreign link: 404.
    assert shop.client.get(url.replace("/SPRING20/", "/SPRING21/")).status_code == 404
    forged = url.rsplit("/", 2)[0] + "/AAAAAAAAAAAAAAAAAAAAAA/pass.pkpass"
    assert shop.client.get(forged).status_code == 404


def test_a_used_coupon_is_voided_on_the_device(
    shop: Shop, apple_cert: AppleCertificate, apns: FakeApns, dev_root: str
) -> None:
    card = shop.card(shop.program("bonus"))
    coupon = _coupon(shop, card["code"], code="FREECUP", kind="free_item", value=0, name="Free coffee")
    pj = open_pkpass(shop.client.get(service.coupon_pass_url(coupon)).content).pass_json
    assert pj["coupon"]["primaryFields"][0] == {"key": "offer", "label": "Gift", "value": "Free coffee"}
    device = Device(shop.client)
    ptid, serial, token = pj["passTypeIdentifier"], pj["serialNumber"], pj["authenticationToken"]
    assert device.register(ptid, serial, token).status_code == 201
    assert device.changed(ptid, tag=None).json()["serialNumbers"] == [serial]
    apns.reset()
    # The guest uses it at the counter: the card changes, its coupon's device is woken.
    sale = shop.buy(
        card["code"],
        60_000,
        coupon="FREECUP",
        items=[{"sku": "LATTE", "name": "Latte", "qty": 1, "price": 60_000}],
    )
    assert sale["coupon"] == "FREECUP"
    worker.drain()
    assert device.push_token in apns.tokens()
    assert device.changed(ptid).json()["serialNumbers"] == [serial]
    r = device.fetch(ptid, serial, token)
    used = open_pkpass(r.content, dev_root).pass_json
    assert used["voided"] is True
    assert used["coupon"]["auxiliaryFields"][0]["value"] == "Used"
    assert device.fetch(ptid, serial, "x" * 32).status_code == 401


def test_an_anonymous_printed_coupon(shop: Shop) -> None:
    coupon = _coupon(shop, None, code="PRINT-300", kind="fixed_off", value=30_000, name="300 off")
    pj = open_pkpass(shop.client.get(service.coupon_pass_url(coupon)).content).pass_json
    assert pj["coupon"]["primaryFields"][0]["value"].startswith("−300.00")
    assert "sharingProhibited" not in pj
