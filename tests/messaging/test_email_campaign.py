"""E-mail campaigns against a local SMTP server: guests with an address and marketing
consent get the campaign (HTML + text, the card's colours, List-Unsubscribe), a dead
address is counted as bounced, one click unsubscribes for good, a forged link does not."""

from __future__ import annotations

from sqlalchemy import select

from fakes.smtp import FakeSmtp
from feedback_support import card_row
from loyalwallet import db
from loyalwallet.customers.models import Consent, Customer
from loyalwallet.outbox import worker
from support import Shop


def test_email_campaign_bounces_and_one_click_unsubscribe(shop: Shop, smtp: FakeSmtp) -> None:
    program = shop.program("bonus")
    ok = shop.card(program, email="anna@example.test", marketing_consent=True)
    shop.card(program, email="dead@bounce.test", marketing_consent=True)
    shop.card(program, marketing_consent=True)  # no address
    shop.card(program, email="quiet@example.test", marketing_consent=False)

    bad = shop.post(
        "/api/v1/campaigns",
        {"name": "x", "header": "h", "body": "b", "channel": "email", "points": 10, "send_now": True},
    )
    assert bad.status_code == 422 and bad.json()["code"] == "validation_error"
    bad = shop.post("/api/v1/campaigns", {"name": "x", "header": "h", "body": "b", "channel": "fax"})
    assert bad.status_code == 422

    r = shop.post(
        "/api/v1/campaigns",
        {
            "name": "Autumn",
            "header": "Pumpkin latte is back",
            "body": "Come <b>taste</b> it this week.",
            "channel": "email",
            "send_now": True,
        },
    )
    assert r.status_code == 201, r.text
    campaign_id = r.json()["id"]
    worker.drain()

    [mail] = smtp.to("anna@example.test")
    assert smtp.to("quiet@example.test") == []
    assert mail["Subject"] == "Pumpkin latte is back"
    unsubscribe = mail["List-Unsubscribe"].strip("<>")
    assert "/u/" in unsubscribe and mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    html = mail.get_body(preferencelist=("html",)).get_content()
    text = mail.get_body(preferencelist=("plain",)).get_content()
    assert "Come &lt;b&gt;taste&lt;/b&gt; it" in html and "<b>taste" not in html
    assert f"/c/{card_row(ok['code']).public_token}" in text and unsubscribe in text
    assert card_row(ok["code"]).message is None  # the wallet card is not touched

    view = shop.get(f"/api/v1/campaigns/{campaign_id}").json()
    assert view["status"] == "sent" and view["channel"] == "email"
    stats = view["stats"]
    assert (stats["sent"], stats["bounced"], stats["skipped"], stats["pending"]) == (1, 1, 1, 0), stats

    # The mail client's one-click request (RFC 8058) unsubscribes.
    path = unsubscribe.split("://", 1)[1].split("/", 1)[1]
    assert "Unsubscribe" in shop.client.get(f"/{path}?lang=en").text
    r = shop.client.post(f"/{path}?lang=en", data={"List-Unsubscribe": "One-Click"})
    assert r.status_code == 200 and "data-done" in r.text
    assert (
        shop.client.post(f"/{path}", data={"List-Unsubscribe": "One-Click"}).status_code == 200
    )  # again: fine
    with db.read() as session:
        customer = session.scalar(
            select(Customer)
            .join(Consent, Consent.customer_id == Customer.id)
            .where(Customer.merchant_id == shop.merchant_id, Consent.channel == "email")
        )
        assert customer is not None and customer.marketing_consent is False
        assert (
            len(
                session.scalars(
                    select(Consent).where(Consent.customer_id == customer.id, Consent.channel == "email")
                ).all()
            )
            == 1
        )
    forged = path[:-4] + "0000"
    assert shop.client.post(f"/{forged}", data={"List-Unsubscribe": "One-Click"}).status_code == 404
    assert shop.client.get("/u/not-a-token").status_code == 404

    # The next campaign no longer reaches her.
    r = shop.post(
        "/api/v1/campaigns",
        {"name": "Winter", "header": "Cocoa", "body": "Hot.", "channel": "email", "send_now": True},
    )
    worker.drain()
    assert len(smtp.to("anna@example.test")) == 1


def test_email_campaign_from_the_admin_form(shop: Shop, smtp: FakeSmtp, app: object) -> None:
    from staff_support import add_staff, login, page_csrf

    program = shop.program("bonus")
    shop.card(program, email="form@example.test", marketing_consent=True)
    manager = login(app, add_staff(shop, "manager"))
    page = manager.get("/admin/campaigns?lang=en")
    assert 'name="send_channel"' in page.text
    form = {
        "csrf": page_csrf(manager, "/admin/campaigns"),
        "name": "Mail",
        "header": "News",
        "body": "Hello",
        "program_id": str(program),
        "send_channel": "email",
        "when": "now",
        "holdout_pct": "0",
    }
    sent = manager.post("/admin/campaigns", data=form, follow_redirects=False)
    assert sent.status_code == 303, sent.text
    worker.drain()
    assert len(smtp.to("form@example.test")) == 1
    detail = manager.get(sent.headers["location"] + "?lang=en")
    assert "data-bounced" in detail.text and "E-mail" in detail.text
