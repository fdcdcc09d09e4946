"""A number SMS.ru reports it found no route to (status 150) is not texted again by
campaigns; the other "not delivered" codes (its lifetime ran out, the phone failed, ...)
may pass next time, so those numbers stay. Only a keyed hash of the number is kept, and
it goes when the guest is erased."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from fakes import smsru
from loyalwallet import db
from loyalwallet.messaging import reports, suppression
from loyalwallet.messaging.models import MessageDelivery, MessageSuppression
from loyalwallet.outbox import worker
from support import Shop, random_phone


def _campaign(shop: Shop) -> dict[str, int]:
    cid = shop.post(
        "/api/v1/campaigns", {"name": "Tea", "header": "Чай", "body": "Улун.", "channel": "sms"}
    ).json()["id"]
    assert shop.post(f"/api/v1/campaigns/{cid}/sms-estimate").status_code == 200
    assert shop.post(f"/api/v1/campaigns/{cid}/send").status_code == 200
    worker.drain()
    return dict(shop.get(f"/api/v1/campaigns/{cid}").json()["stats"])


def _texts(fake: smsru.FakeSmsRu, phone: str) -> int:
    return sum(1 for r in fake.received if r.to.lstrip("+") == phone.lstrip("+"))


def test_a_number_with_no_route_is_not_texted_again(shop: Shop, fake_smsru: smsru.FakeSmsRu) -> None:
    program = shop.program("bonus")
    gone, tired, fine = (random_phone() for _ in range(3))
    for phone in (gone, tired, fine):
        shop.card(program, phone=phone, marketing_consent=True)
    assert _campaign(shop)["sent"] == 3
    for phone, code in ((gone, 150), (tired, 104), (fine, 103)):
        got = fake_smsru.last_to(phone)
        assert got is not None
        fake_smsru.set_status(got.sms_id, code)
    reports.poll(db.utcnow() + dt.timedelta(minutes=5))
    with db.read() as session:
        marks = session.scalars(
            select(MessageSuppression).where(MessageSuppression.merchant_id == shop.merchant_id)
        ).all()
    assert [(m.channel, m.code, m.address_hash) for m in marks] == [
        ("sms", "150", suppression.key("sms", gone))
    ]

    stats = _campaign(shop)
    assert (stats["sent"], stats["skipped"]) == (2, 1), stats
    assert (_texts(fake_smsru, gone), _texts(fake_smsru, tired), _texts(fake_smsru, fine)) == (1, 2, 2)

    # Erasing the guest takes the number's mark and the delivery records' hash with it.
    assert shop.post("/api/v1/customers/erase", {"phone": gone}).status_code == 200
    digest = suppression.key("sms", gone)
    with db.read() as session:
        assert (
            session.scalars(
                select(MessageSuppression.id).where(MessageSuppression.merchant_id == shop.merchant_id)
            ).all()
            == []
        )
        assert (
            session.scalars(
                select(MessageDelivery.id).where(
                    MessageDelivery.merchant_id == shop.merchant_id, MessageDelivery.address_hash == digest
                )
            ).all()
            == []
        )
