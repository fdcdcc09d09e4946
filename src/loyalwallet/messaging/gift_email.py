"""A gift certificate sent to its recipient by e-mail (`certificate.email` rows): the
amount, the buyer's message, the link to the certificate's web page (balance, QR,
print) and its wallet links, in the merchant's language, through the configured SMTP
sender (messaging.email). The address is sealed in the row (as card e-mails are)."""

from __future__ import annotations

import base64
import logging
from email.message import EmailMessage
from email.utils import make_msgid

from sqlalchemy.orm import Session

from loyalwallet import crypto, db
from loyalwallet.certificates.models import GiftCertificate
from loyalwallet.config import get_settings
from loyalwallet.merchants.service import get_merchant
from loyalwallet.messaging import email, rules
from loyalwallet.outbox.handlers import Delivery, Permanent, Retry
from loyalwallet.outbox.service import enqueue
from loyalwallet.text import gettext_for, money

log = logging.getLogger("loyalwallet.messaging")

TOPIC = "certificate.email"


def queue(session: Session, merchant_id: int, certificate_id: int, to: str, lang: str) -> None:
    sealed = crypto.seal(to, merchant_id=merchant_id, column="email_to") or b""
    enqueue(
        session,
        merchant_id,
        TOPIC,
        {"certificate_id": certificate_id, "to": base64.b64encode(sealed).decode(), "lang": lang},
        max_attempts=8,
    )


def compose(certificate_id: int, to: str, lang: str) -> EmailMessage | None:
    _ = gettext_for(lang)
    with db.read() as session:
        cert = session.get(GiftCertificate, certificate_id)
        if cert is None:
            return None
        merchant = get_merchant(session, cert.merchant_id)
        name = crypto.open_(
            cert.recipient_name_enc, merchant_id=cert.merchant_id, column="gift_certificates.recipient_name"
        )
    base = get_settings().base_url.rstrip("/")
    page = f"{base}/g/{cert.public_token}"
    amount = money(cert.initial_amount, cert.currency, trim_zero_cents=True)
    lines = [
        (_("%(name)s, a gift certificate of %(merchant)s for you: %(amount)s.") if name else
         _("A gift certificate of %(merchant)s for you: %(amount)s."))
        % {"name": name, "merchant": merchant.name, "amount": amount},
    ]  # fmt: skip
    if cert.message:
        lines.append(f"«{cert.message}»")
    lines.append(_("Show its QR code at the counter: it pays all or part of your check."))
    links = [
        (_("Open the certificate"), page),
        (_("Add to Apple Wallet"), f"{page}/pass.pkpass"),
        (_("Add to Google Wallet"), f"{page}/google"),
    ]
    footer = _("You got this message because someone bought you a gift certificate at %(merchant)s.") % {
        "merchant": merchant.name
    }
    message = EmailMessage()
    message["To"] = to
    message["Subject"] = rules.email_subject(amount, merchant.name, _("Gift certificate"))
    message["Message-ID"] = make_msgid(domain="loyalwallet")
    message.set_content(rules.email_text(lines, links, footer))
    message.add_alternative(
        rules.email_html(
            title=_("Gift certificate"),
            lines=lines,
            links=links,
            footer=footer,
            background="#6f4e37",
            foreground="#ffffff",
            logo_url=None,
            logo_text=merchant.name,
        ),
        subtype="html",
    )
    return message


def deliver(msg: Delivery) -> None:
    if msg.merchant_id is None:
        raise Permanent("an e-mail needs a merchant")
    to = crypto.open_(base64.b64decode(msg.payload["to"]), merchant_id=msg.merchant_id, column="email_to")
    if not to:
        raise Permanent("no address")
    message = compose(int(msg.payload["certificate_id"]), to, str(msg.payload.get("lang") or "ru"))
    if message is None:
        return
    try:
        email.get_provider().send(message)
    except email.EmailError as exc:
        if exc.permanent:
            log.info("outbox %s: certificate e-mail bounced or refused: %s", msg.id, exc)
            raise Permanent(str(exc)) from exc
        raise Retry(str(exc)) from exc
