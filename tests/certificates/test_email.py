"""A gift certificate e-mailed to its recipient: sold with an e-mail address and
send_to_recipient, the outbox hands the message to the SMTP server (a local fake): the
amount, the buyer's message, the certificate's page and wallet links, in Russian."""

from __future__ import annotations

from fakes.smtp import FakeSmtp
from loyalwallet.outbox import worker
from messaging_support import smtp  # noqa: F401  (a fixture)
from support import Shop


def test_the_certificate_is_emailed_to_the_recipient(shop: Shop, smtp: FakeSmtp) -> None:  # noqa: F811
    r = shop.post(
        "/api/v1/certificates",
        {
            "amount": 300_000,
            "recipient_contact": "masha@example.test",
            "recipient_name": "Маша",
            "message": "С днём рождения!",
            "send_to_recipient": True,
        },
        role="cashier",
    )
    assert r.status_code == 201, r.text
    cert = r.json()
    assert cert["sent"] == "email"
    worker.drain()
    [mail] = smtp.to("masha@example.test")
    text = mail.get_body(preferencelist=("plain",)).get_content()
    html = mail.get_body(preferencelist=("html",)).get_content()
    assert "Маша, для вас подарочный сертификат Test café на 3\u00a0000\u00a0₽." in text
    assert "«С днём рождения!»" in text
    assert cert["web_url"] in text and cert["web_url"] in html
    assert f"{cert['web_url']}/pass.pkpass" in text and f"{cert['web_url']}/google" in text
    assert cert["code"] not in text  # the code (a bearer secret) stays on the page behind the link
