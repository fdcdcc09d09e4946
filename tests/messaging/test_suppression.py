"""A hard-bounced e-mail address is not mailed again: a 5.x.x refusal at send time or a
late DSN marks it (as a keyed hash, never the address); the next campaign skips it
without asking the server, a card send by e-mail is refused (409 email_bounced) and the
guest's admin page says why; a new address for the guest lifts it; erasing the guest
leaves nothing keyed by the address."""

from __future__ import annotations

from email.message import EmailMessage, Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from typing import Any

from sqlalchemy import func, select

from fakes.smtp import FakeSmtp
from loyalwallet import db
from loyalwallet.customers.models import Customer
from loyalwallet.messaging import bounces, suppression
from loyalwallet.messaging.models import CardSend, MessageDelivery, MessageSuppression
from loyalwallet.outbox import worker
from staff_support import add_staff, csrf_of, login
from support import Shop, random_phone

BOUNCE = "bounce@mail.loyalwallet.test"


def dsn(
    original: EmailMessage, to: str, failed: str, *, action: str = "failed", status: str = "5.1.1"
) -> bytes:
    """A DSN (RFC 3464) as a mail server writes one about `failed`, sent to `to`."""
    report = MIMEMultipart("report", report_type="delivery-status")
    report["From"] = "MAILER-DAEMON@mx.example.test"
    report["To"] = to
    report["Subject"] = "Undelivered Mail Returned to Sender"
    report.attach(MIMEText("Your message could not be delivered.\n"))
    about_message, about_recipient = Message(), Message()
    about_message["Reporting-MTA"] = "dns; mx.example.test"
    about_recipient["Final-Recipient"] = f"rfc822; {failed}"
    about_recipient["Action"] = action
    about_recipient["Status"] = status
    machine = MIMEBase("message", "delivery-status")
    machine.set_payload([about_message, about_recipient])
    report.attach(machine)
    headers = MIMEBase("text", "rfc822-headers")
    headers.set_payload(str(original["Message-ID"]) + "\n")
    report.attach(headers)
    return report.as_bytes()


def _campaign(shop: Shop) -> dict[str, Any]:
    r = shop.post(
        "/api/v1/campaigns",
        {"name": "N", "header": "News", "body": "Come.", "channel": "email", "send_now": True},
    )
    assert r.status_code == 201, r.text
    worker.drain()
    return dict(shop.get(f"/api/v1/campaigns/{r.json()['id']}").json()["stats"])


def _marks(shop: Shop) -> list[MessageSuppression]:
    with db.read() as session:
        return list(
            session.scalars(
                select(MessageSuppression).where(MessageSuppression.merchant_id == shop.merchant_id)
            )
        )


def _sends(shop: Shop) -> int:
    with db.read() as session:
        count = select(func.count()).select_from(CardSend).where(CardSend.merchant_id == shop.merchant_id)
        return int(session.scalar(count) or 0)


def _customer_id(shop: Shop) -> int:
    with db.read() as session:
        found = session.scalar(
            select(Customer.id).where(Customer.merchant_id == shop.merchant_id).order_by(Customer.id.desc())
        )
    assert found is not None
    return int(found)


def test_a_refused_address_is_not_mailed_again(shop: Shop, smtp: FakeSmtp, app: object) -> None:
    program = shop.program("bonus")
    phone = random_phone()
    dead = shop.card(program, phone, email="dead@bounce.test", marketing_consent=True)
    customer_id = _customer_id(shop)
    shop.card(program, email="anna@example.test", marketing_consent=True)

    first = _campaign(shop)
    assert (first["sent"], first["bounced"]) == (1, 1), first
    assert smtp.refused.count("dead@bounce.test") == 1
    [mark] = _marks(shop)
    assert mark.channel == "email" and mark.customer_id == customer_id and mark.code == "550"
    assert mark.address_hash == suppression.key("email", "DEAD@bounce.test")
    assert "dead" not in repr([mark.address_hash, mark.code])  # no plain address kept

    second = _campaign(shop)
    assert (second["sent"], second["bounced"], second["skipped"]) == (1, 0, 1), second
    assert smtp.refused.count("dead@bounce.test") == 1  # not even asked
    assert len(smtp.to("anna@example.test")) == 2

    # A card send by e-mail is refused before anything is written; SMS still goes.
    before = _sends(shop)
    r = shop.post(f"/api/v1/cards/{dead['code']}/send", {"channel": "email"}, role="cashier")
    assert r.status_code == 409 and r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "email_bounced" and "550" in r.json()["detail"], r.text
    assert _sends(shop) == before

    # The guest's page explains it, in English and Russian, and offers no e-mail button.
    manager = login(app, add_staff(shop, "manager"))
    page = manager.get(f"/admin/guests/{customer_id}?lang=en")
    assert "data-email-bounced" in page.text and "bounced for good" in page.text
    assert 'value="email"' not in page.text
    assert "окончательно отклонён" in manager.get(f"/admin/guests/{customer_id}?lang=ru").text
    r = manager.post(
        f"/admin/guests/{customer_id}/send-card",
        data={"csrf": csrf_of(page.text), "card": dead["code"], "channel": "email"},
        follow_redirects=False,
    )
    assert r.status_code in (303, 409) and _sends(shop) == before

    # The guest gives a new address (a card of another program): the mark goes.
    other = shop.program("stamp")
    shop.card(other, phone, email="new@example.test")
    assert _marks(shop) == []
    assert "data-email-bounced" not in manager.get(f"/admin/guests/{customer_id}?lang=en").text
    r = shop.post(f"/api/v1/cards/{dead['code']}/send", {"channel": "email"}, role="cashier")
    assert r.status_code == 202, r.text
    worker.drain()
    assert len(smtp.to("new@example.test")) == 1


def test_a_late_bounce_stops_mail_and_erasure_leaves_nothing(
    shop: Shop, smtp: FakeSmtp, monkeypatch: Any
) -> None:
    monkeypatch.setenv("LOYALWALLET_SMTP_BOUNCE_ADDRESS", BOUNCE)
    program = shop.program("bonus")
    phone = random_phone()
    card = shop.card(program, phone, email="late@example.test", marketing_consent=True)
    customer_id = _customer_id(shop)
    assert shop.post(f"/api/v1/cards/{card['code']}/send", {"channel": "email"}).status_code == 202
    worker.drain()
    [original] = smtp.to("late@example.test")
    [envelope] = [f for f, rcpt in smtp.envelopes if rcpt == ["late@example.test"]]
    assert _marks(shop) == []
    # A delay notice does not mark; the real DSN does, once.
    assert bounces.handle(
        dsn(original, envelope, "late@example.test", action="delayed", status="4.4.1")
    ).startswith("ignored")
    assert _marks(shop) == []
    assert bounces.handle(dsn(original, envelope, "late@example.test", status="5.1.1")) == "bounced"
    [mark] = _marks(shop)
    assert (mark.customer_id, mark.code) == (customer_id, "5.1.1")

    r = shop.post(f"/api/v1/cards/{card['code']}/send", {"channel": "email"})
    assert r.status_code == 409 and r.json()["code"] == "email_bounced"
    stats = _campaign(shop)
    assert (stats["sent"], stats["skipped"]) == (0, 1), stats
    assert len(smtp.to("late@example.test")) == 1

    # Erasure: the mark and the bounce record's address hash go with the guest.
    digest = suppression.key("email", "late@example.test")
    r = shop.post("/api/v1/customers/erase", {"phone": phone, "reason": "asked"})
    assert r.status_code == 200, r.text
    assert _marks(shop) == []
    with db.read() as session:
        left = session.scalars(
            select(MessageDelivery.id).where(
                MessageDelivery.merchant_id == shop.merchant_id, MessageDelivery.address_hash == digest
            )
        ).all()
        assert left == []
        assert (
            session.scalar(
                select(MessageSuppression).where(
                    MessageSuppression.merchant_id == shop.merchant_id,
                    MessageSuppression.address_hash == digest,
                )
            )
            is None
        )
