"""SMS delivery reports against the fake SMS.ru: each accepted SMS keeps its sms_id; its
fate comes by SMS.ru's callback (a real POST to the served app) or by the bounded
sms/status poll; the campaign counts delivered and undelivered, the card send its own."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from fakes import smsru
from loyalwallet import db
from loyalwallet.cards.models import Card
from loyalwallet.messaging import reports
from loyalwallet.messaging.models import CardSend, MessageDelivery
from loyalwallet.outbox import worker
from support import Shop, random_phone


def _send_status(shop: Shop) -> list[str]:
    with db.read() as session:
        return list(
            session.scalars(
                select(CardSend.status).where(CardSend.merchant_id == shop.merchant_id).order_by(CardSend.id)
            )
        )


def test_a_card_link_is_followed_by_the_status_poll(
    shop: Shop, fake_smsru: smsru.FakeSmsRu, app: object
) -> None:
    program = shop.program("bonus")
    phone = random_phone()
    card = shop.card(program, phone=phone)
    assert (
        shop.post(f"/api/v1/cards/{card['code']}/send", {"channel": "sms"}, role="cashier").status_code == 202
    )
    worker.drain()
    got = fake_smsru.last_to(phone)
    assert got is not None and got.sms_id
    assert _send_status(shop) == ["sent"]

    # Not due yet: nothing asked. Due, still on its way (102): asked, stays "sent".
    now = db.utcnow()
    asked = len(fake_smsru.status_requests)
    reports.poll(now)
    assert len(fake_smsru.status_requests) == asked
    assert reports.poll(now + dt.timedelta(minutes=3)) == 0
    assert got.sms_id in fake_smsru.status_requests[-1]["sms_id"].split(",")
    assert _send_status(shop) == ["sent"]

    fake_smsru.set_status(got.sms_id, 103)
    assert reports.poll(now + dt.timedelta(minutes=20)) == 1
    assert _send_status(shop) == ["delivered"]
    # Final: never asked again.
    asked = len(fake_smsru.status_requests)
    reports.poll(now + dt.timedelta(days=3))
    assert all(got.sms_id not in r["sms_id"] for r in fake_smsru.status_requests[asked:])

    # The guest's admin page shows how the card went.
    from staff_support import add_staff, login

    with db.read() as session:
        customer_id = session.scalar(select(Card.customer_id).where(Card.code == card["code"]))
    page = login(app, add_staff(shop, "manager")).get(f"/admin/guests/{customer_id}?lang=ru").text
    assert 'data-send-status="delivered"' in page and "доставлено" in page


def test_the_poll_gives_up(shop: Shop, fake_smsru: smsru.FakeSmsRu) -> None:
    program = shop.program("bonus")
    phone = random_phone()
    card = shop.card(program, phone=phone)
    shop.post(f"/api/v1/cards/{card['code']}/send", {"channel": "sms"}, role="cashier")
    worker.drain()
    sms_id = fake_smsru.last_to(phone).sms_id  # type: ignore[union-attr]
    at = db.utcnow()
    for _ in range(10):  # far more rounds than pauses
        at += dt.timedelta(days=2)
        reports.poll(at)
    with db.read() as session:
        row = session.scalar(select(MessageDelivery).where(MessageDelivery.ref == sms_id))
        assert row is not None
        assert (row.status, row.next_poll_at, row.polls) == ("sent", None, 5)


def test_a_campaign_counts_the_callbacks_reports(
    shop: Shop, fake_smsru: smsru.FakeSmsRu, live_server: object
) -> None:
    program = shop.program("bonus")
    phones = [random_phone() for _ in range(3)]
    for phone in phones:
        shop.card(program, phone=phone, marketing_consent=True)
    cid = shop.post(
        "/api/v1/campaigns", {"name": "Tea", "header": "Чай", "body": "Улун.", "channel": "sms"}
    ).json()["id"]
    assert shop.post(f"/api/v1/campaigns/{cid}/sms-estimate").status_code == 200
    assert shop.post(f"/api/v1/campaigns/{cid}/send").status_code == 200
    worker.drain()
    ids = [fake_smsru.last_to(p).sms_id for p in phones]  # type: ignore[union-attr]
    assert all(ids)
    base = live_server.url  # type: ignore[attr-defined]

    # A forged callback (a wrong secret) is refused and changes nothing.
    assert fake_smsru.report(f"{base}/sms/callback/{'0' * 32}", [(ids[0], 104)]) == "HTTP 404"
    stats = shop.get(f"/api/v1/campaigns/{cid}").json()["stats"]
    assert (stats["sms_delivered"], stats["sms_undelivered"], stats["sms_unreported"]) == (0, 0, 3)

    url = f"{base}/sms/callback/{reports.callback_secret()}"
    answer = fake_smsru.report(
        url, [(ids[0], 102), (ids[0], 103), (ids[1], 104), ("123456-00000000", 103), ("junk", 1)]
    )
    assert answer == "100"
    stats = shop.get(f"/api/v1/campaigns/{cid}").json()["stats"]
    assert (stats["sms_delivered"], stats["sms_undelivered"], stats["sms_unreported"]) == (1, 1, 1)
    assert stats["sent"] == 3

    # A late contrary report does not undo a final one; the poll settles the third.
    assert fake_smsru.report(url, [(ids[0], 107)]) == "100"
    fake_smsru.set_status(ids[2], 103)
    reports.poll(db.utcnow() + dt.timedelta(minutes=5))
    stats = shop.get(f"/api/v1/campaigns/{cid}").json()["stats"]
    assert (stats["sms_delivered"], stats["sms_undelivered"], stats["sms_unreported"]) == (2, 1, 0)

    from staff_support import add_staff, login

    manager = login(live_server.app, add_staff(shop, "manager"))  # type: ignore[attr-defined]
    page = manager.get(f"/admin/campaigns/{cid}").text
    assert "data-sms-delivered>2<" in page and "data-sms-undelivered>1<" in page


def test_the_callback_address_command(settings) -> None:  # type: ignore[no-untyped-def]
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "LOYALWALLET_DATABASE_URL": settings.database_url,
        "LOYALWALLET_DATA_DIR": str(settings.data_dir),
    }
    out = subprocess.run(
        [sys.executable, "-m", "loyalwallet.cli", "sms", "callback-url"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith(f"/sms/callback/{reports.callback_secret()}")
