"""Sending the card to its guest: POST /api/v1/cards/{code}/send by SMS (SMS.ru fake) and
e-mail (a local SMTP server), from the guest's admin page; limited per card, recorded,
refused without an address, for a guest who withdrew consent, for an unknown channel."""

from __future__ import annotations

from sqlalchemy import func, select

from fakes import smsru
from fakes.smtp import FakeSmtp
from loyalwallet import db
from loyalwallet.customers.models import Customer
from loyalwallet.customers.service import record_consent
from loyalwallet.messaging.models import CardSend
from loyalwallet.outbox import worker
from loyalwallet.outbox.models import OutboxMessage
from staff_support import add_staff, csrf_of, login
from support import Shop, random_phone


def _sends(shop: Shop) -> int:
    with db.read() as session:
        return int(
            session.scalar(
                select(func.count()).select_from(CardSend).where(CardSend.merchant_id == shop.merchant_id)
            )
            or 0
        )


def test_send_by_sms_and_email_with_the_cards_links(
    shop: Shop, smtp: FakeSmtp, fake_smsru: smsru.FakeSmsRu
) -> None:
    program = shop.program("bonus")
    phone = random_phone()
    card = shop.card(program, phone=phone, email="anna@example.test")
    r = shop.post(f"/api/v1/cards/{card['code']}/send", {"channel": "sms"}, role="cashier")
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "queued"
    r = shop.post(f"/api/v1/cards/{card['code']}/send", {"channel": "email"}, role="cashier")
    assert r.status_code == 202, r.text
    worker.drain()

    sms = fake_smsru.last_to(phone.lstrip("+"))
    assert sms is not None and "/c/" in sms.msg
    [mail] = smtp.to("anna@example.test")
    assert "Test café" in mail["Subject"] or "Test caf" in str(mail["Subject"])
    text = mail.get_body(preferencelist=("plain",)).get_content()
    html = mail.get_body(preferencelist=("html",)).get_content()
    token_link = sms.msg.split()[-1]
    assert token_link in text and token_link in html
    assert "pass.pkpass" in text and "/google" in text
    assert "background:" in html
    assert _sends(shop) == 2
    with db.read() as session:
        statuses = session.execute(
            select(CardSend.channel, CardSend.status).where(CardSend.merchant_id == shop.merchant_id)
        ).all()
    assert sorted(tuple(r) for r in statuses) == [("email", "sent"), ("sms", "sent")]


def test_bad_input_is_refused_and_writes_nothing(shop: Shop, smtp: FakeSmtp) -> None:
    program = shop.program("bonus")
    no_email = shop.card(program)
    cases = [
        (no_email["code"], {"channel": "email"}, 409, "channel_unavailable"),
        (no_email["code"], {"channel": "telegram"}, 409, "channel_unavailable"),
        (no_email["code"], {"channel": "pigeon"}, 422, "validation_error"),
        (no_email["code"], {}, 422, "validation_error"),
        ("0000000000000", {"channel": "sms"}, 404, "not_found"),
    ]
    for code, body, status, problem in cases:
        r = shop.post(f"/api/v1/cards/{code}/send", body, role="cashier")
        assert (r.status_code, r.json()["code"]) == (status, problem), (body, r.text)
    # A guest who withdrew consent to personal-data processing gets nothing.
    withdrawn = shop.card(program, email="gone@example.test")
    with db.transaction() as session:
        customer_id = session.scalar(
            select(Customer.id).where(Customer.merchant_id == shop.merchant_id).order_by(Customer.id.desc())
        )
        customer = session.get(Customer, customer_id)
        assert customer is not None
        record_consent(session, customer, "personal_data", False, "v1", "api")
    r = shop.post(f"/api/v1/cards/{withdrawn['code']}/send", {"channel": "email"}, role="cashier")
    assert r.json()["code"] == "consent_required"
    assert _sends(shop) == 0
    with db.read() as session:
        assert not session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.merchant_id == shop.merchant_id, OutboxMessage.topic == "email.send")
        )


def test_sends_are_limited_per_card(shop: Shop, smtp: FakeSmtp) -> None:
    program = shop.program("bonus")
    card = shop.card(program, email="many@example.test")
    statuses = [
        shop.post(f"/api/v1/cards/{card['code']}/send", {"channel": "email"}).status_code for _ in range(4)
    ]
    assert statuses == [202, 202, 202, 429]
    r = shop.post(f"/api/v1/cards/{card['code']}/send", {"channel": "email"})
    assert r.json()["code"] == "rate_limited" and r.json()["retry_after"] > 0
    assert _sends(shop) == 3


def test_a_bouncing_address_is_not_retried(shop: Shop, smtp: FakeSmtp) -> None:
    program = shop.program("bonus")
    card = shop.card(program, email="nobody@bounce.test")
    assert shop.post(f"/api/v1/cards/{card['code']}/send", {"channel": "email"}).status_code == 202
    worker.drain()
    with db.read() as session:
        row = session.scalar(
            select(OutboxMessage).where(
                OutboxMessage.merchant_id == shop.merchant_id, OutboxMessage.topic == "email.send"
            )
        )
        assert row is not None and row.status == "dead" and row.attempts == 1, (row.status, row.attempts)
    assert smtp.to("nobody@bounce.test") == []
    with db.read() as session:
        assert session.scalars(
            select(CardSend.status).where(CardSend.merchant_id == shop.merchant_id)
        ).all() == ["bounced"]


def test_send_from_the_guests_admin_page(shop: Shop, smtp: FakeSmtp, app: object) -> None:
    program = shop.program("bonus")
    card = shop.card(program, email="page@example.test")
    with db.read() as session:
        customer_id = session.scalar(
            select(Customer.id).where(Customer.merchant_id == shop.merchant_id).order_by(Customer.id.desc())
        )
    manager = login(app, add_staff(shop, "manager"))
    page = manager.get(f"/admin/guests/{customer_id}?lang=en")
    assert "data-send-card" in page.text
    r = manager.post(
        f"/admin/guests/{customer_id}/send-card",
        data={"csrf": csrf_of(page.text), "card": card["code"], "channel": "email"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    worker.drain()
    assert len(smtp.to("page@example.test")) == 1
