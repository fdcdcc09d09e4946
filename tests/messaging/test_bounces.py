"""Late bounces: the local SMTP server accepts the message, later a DSN (RFC 3464, built
here with the email package as a mail server writes one) comes back to the message's own
Return-Path bounce+<token>@...; `loyalwallet email bounce`, a separate process reading
the DSN on standard input, marks the campaign recipient / card send bounced. A forged or
unknown DSN, a delay notice or an auto-reply changes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from email.message import EmailMessage, Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import pytest
from sqlalchemy import select

from fakes.smtp import FakeSmtp
from loyalwallet import db
from loyalwallet.messaging import bounces
from loyalwallet.messaging.models import CardSend
from loyalwallet.outbox import worker
from support import Shop

BOUNCE = "bounce@mail.loyalwallet.test"


def dsn(
    original: EmailMessage, to: str, failed: str, *, action: str = "failed", status: str = "5.1.1"
) -> bytes:
    """A DSN as Postfix writes one: a human part, the machine part, the original headers."""
    report = MIMEMultipart("report", report_type="delivery-status")
    report["From"] = "Mail Delivery System <MAILER-DAEMON@mx.example.test>"
    report["To"] = to
    report["Subject"] = "Undelivered Mail Returned to Sender"
    report.attach(MIMEText("I'm sorry to have to inform you that your message could not be delivered.\n"))
    about_message, about_recipient = Message(), Message()
    about_message["Reporting-MTA"] = "dns; mx.example.test"
    about_message["Arrival-Date"] = "Mon, 7 Dec 2026 12:00:00 +0000"
    about_recipient["Final-Recipient"] = f"rfc822; {failed}"
    about_recipient["Original-Recipient"] = f"rfc822;{failed}"
    about_recipient["Action"] = action
    about_recipient["Status"] = status
    about_recipient["Diagnostic-Code"] = f"smtp; 550 {status} <{failed}>: Recipient address rejected"
    machine = MIMEBase("message", "delivery-status")
    machine.set_payload([about_message, about_recipient])
    report.attach(machine)
    headers = MIMEBase("text", "rfc822-headers")
    head = original.as_bytes().replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]  # as sent: encoded words
    headers.set_payload(head.decode("ascii", "replace") + "\n")
    report.attach(headers)
    return report.as_bytes()


def run_bounce(settings, data: bytes, *args: str) -> subprocess.CompletedProcess[bytes]:  # type: ignore[no-untyped-def]
    env = {
        **os.environ,
        "LOYALWALLET_DATABASE_URL": settings.database_url,
        "LOYALWALLET_DATA_DIR": str(settings.data_dir),
        "LOYALWALLET_SMTP_BOUNCE_ADDRESS": BOUNCE,
    }
    return subprocess.run(
        [sys.executable, "-m", "loyalwallet.cli", "email", "bounce", *args],
        input=data,
        env=env,
        capture_output=True,
        timeout=120,
    )


@pytest.fixture
def verp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOYALWALLET_SMTP_BOUNCE_ADDRESS", BOUNCE)


def _envelope(smtp: FakeSmtp, to: str) -> str:
    [mail_from] = [f for f, rcpt in smtp.envelopes if rcpt == [to]]
    return mail_from


@pytest.mark.slow(seconds=20)
def test_a_late_bounce_counts_on_the_campaign(shop: Shop, smtp: FakeSmtp, verp: None, settings) -> None:  # type: ignore[no-untyped-def]
    program = shop.program("bonus")
    shop.card(program, email="anna@example.test", marketing_consent=True)
    shop.card(program, email="gone@example.test", marketing_consent=True)
    cid = shop.post(
        "/api/v1/campaigns",
        {"name": "A", "header": "Latte", "body": "Come.", "channel": "email", "send_now": True},
    ).json()["id"]
    worker.drain()
    anna, gone = _envelope(smtp, "anna@example.test"), _envelope(smtp, "gone@example.test")
    assert anna != gone and anna.startswith("bounce+") and anna.endswith("@mail.loyalwallet.test")
    [original] = smtp.to("gone@example.test")

    def stats() -> tuple[int, int]:
        s = shop.get(f"/api/v1/campaigns/{cid}").json()["stats"]
        return s["sent"], s["bounced"]

    assert stats() == (2, 0)
    # Forged: a token never issued; another address under a real token; a delay notice;
    # an auto-reply; a DSN to our plain address. The first as a process, the rest in-process.
    fake_token = "bounce+" + "0" * 20 + "@mail.loyalwallet.test"
    out = run_bounce(settings, dsn(original, fake_token, "gone@example.test"))
    assert out.returncode == 0 and b"unknown token" in out.stdout, out
    assert (
        bounces.handle(dsn(original, anna, "gone@example.test"))
        == "ignored: the DSN is about another address"
    )
    delayed = dsn(original, gone, "gone@example.test", action="delayed", status="4.4.1")
    assert bounces.handle(delayed).startswith("ignored")
    reply = EmailMessage()
    reply["To"], reply["From"], reply["Subject"] = gone, "gone@example.test", "Out of office"
    reply.set_content("I am away.")
    assert bounces.handle(reply.as_bytes()).startswith("ignored")
    assert bounces.handle(dsn(original, BOUNCE, "gone@example.test")).startswith("ignored")
    assert stats() == (2, 0)

    # The real one, piped to the command as the mail system would (recipient as --to).
    out = run_bounce(settings, dsn(original, "postmaster@cafe.test", "gone@example.test"), "--to", gone)
    assert out.returncode == 0 and out.stdout.strip() == b"bounced", out
    assert stats() == (1, 1)
    out = run_bounce(settings, dsn(original, gone, "gone@example.test"))  # delivered twice
    assert out.stdout.strip() == b"already" and stats() == (1, 1)


def test_a_late_bounce_of_a_card_link(shop: Shop, smtp: FakeSmtp, verp: None) -> None:
    program = shop.program("bonus")
    card = shop.card(program, email="late@example.test")
    assert (
        shop.post(f"/api/v1/cards/{card['code']}/send", {"channel": "email"}, role="cashier").status_code
        == 202
    )
    worker.drain()
    [original] = smtp.to("late@example.test")
    envelope = _envelope(smtp, "late@example.test")
    with db.read() as session:
        assert session.scalars(
            select(CardSend.status).where(CardSend.merchant_id == shop.merchant_id)
        ).all() == ["sent"]
    assert bounces.handle(dsn(original, envelope, "LATE@example.test"), None) == "bounced"
    with db.read() as session:
        assert session.scalars(
            select(CardSend.status).where(CardSend.merchant_id == shop.merchant_id)
        ).all() == ["bounced"]


def test_without_a_bounce_address_the_sender_is_the_from(shop: Shop, smtp: FakeSmtp) -> None:
    program = shop.program("bonus")
    card = shop.card(program, email="plain@example.test")
    shop.post(f"/api/v1/cards/{card['code']}/send", {"channel": "email"}, role="cashier")
    worker.drain()
    assert _envelope(smtp, "plain@example.test") == "cafe@loyalwallet.test"
