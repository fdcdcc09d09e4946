"""Delivering `email.send` rows: the message is composed at delivery from the card as it
is then (its design's colours and logo, its links), in the guest's language."""

from __future__ import annotations

import base64
import logging
from email.message import EmailMessage
from email.utils import make_msgid

from sqlalchemy import update

from loyalwallet import crypto, db
from loyalwallet.cards.models import Card
from loyalwallet.cards.views import card_view
from loyalwallet.enrollment import sms
from loyalwallet.enrollment.links import base_url
from loyalwallet.enrollment.webcard import brand, load_card_by_id
from loyalwallet.errors import DomainError
from loyalwallet.merchants.models import Merchant
from loyalwallet.messaging import bounces, email, reports, rules, suppression
from loyalwallet.messaging.models import CardSend
from loyalwallet.outbox.handlers import Delivery, Permanent, Retry
from loyalwallet.text import gettext_for

log = logging.getLogger("loyalwallet.messaging")


def card_email(card_id: int, to: str, lang: str) -> EmailMessage:
    _ = gettext_for(lang)
    with db.read() as session:
        card, program, merchant = load_card_by_id(session, card_id)
        view = card_view(session, card, program, with_customer=False)
        look = brand(program, merchant, card.tier)
    base = base_url().rstrip("/")
    links = [
        (_("Open the card"), str(view["web_card_url"])),
        (_("Add to Apple Wallet"), str(view["apple_pass_url"])),
        (_("Add to Google Wallet"), str(view["google_save_url"])),
    ]
    lines = [
        _("Here is your loyalty card of %(merchant)s.") % {"merchant": merchant.name},
        _("Show its QR code at the counter, or add it to your phone's wallet."),
    ]
    footer = _("You got this message because you asked for your card at %(merchant)s.") % {
        "merchant": merchant.name
    }
    logo = f"{base}{look['logo_url']}" if look["logo_url"] else None
    message = EmailMessage()
    message["To"] = to
    message["Subject"] = rules.email_subject(program.name, merchant.name, _("Your card"))
    message["Message-ID"] = make_msgid(domain="loyalwallet")
    message.set_content(rules.email_text(lines, links, footer))
    message.add_alternative(
        rules.email_html(
            title=_("Your card"),
            lines=lines,
            links=links,
            footer=footer,
            background=look["background"],
            foreground=look["foreground"],
            logo_url=logo,
            logo_text=look["logo_text"],
        ),
        subtype="html",
    )
    return message


def send_email(msg: Delivery) -> None:
    if msg.merchant_id is None:
        raise Permanent("an e-mail needs a merchant")
    to = crypto.open_(base64.b64decode(msg.payload["to"]), merchant_id=msg.merchant_id, column="email_to")
    if not to:
        raise Permanent("no address")
    try:
        message = card_email(int(msg.payload["card_id"]), to, str(msg.payload.get("lang") or "ru"))
    except DomainError as exc:
        raise Permanent(str(exc)) from exc
    send_id = msg.payload.get("send_id")
    provider = email.get_provider()
    token = bounces.new_token()
    envelope = bounces.envelope_for(token) if isinstance(provider, email.SmtpProvider) else None
    try:
        if isinstance(provider, email.SmtpProvider):
            provider.send(message, envelope_from=envelope)
        else:
            provider.send(message)
    except email.EmailError as exc:
        if exc.permanent:
            log.info("outbox %s: e-mail bounced or refused: %s", msg.id, exc)
            _mark(send_id, "bounced" if exc.bounced else "failed")
            if exc.bounced:
                _suppress(msg.merchant_id, int(msg.payload["card_id"]), to, exc.code)
            raise Permanent(str(exc)) from exc
        raise Retry(str(exc)) from exc
    _mark(send_id, "sent")
    if envelope is not None:  # a late bounce can find this send
        with db.transaction() as session:
            bounces.record(
                session,
                msg.merchant_id,
                token,
                to,
                card_send_id=send_id if isinstance(send_id, int) else None,
            )


def _suppress(merchant_id: int, card_id: int, to: str, code: str | None) -> None:
    """The address was refused for good: not mailed again (messaging.suppression)."""
    with db.transaction() as session:
        card = session.get(Card, card_id)
        suppression.add(
            session,
            merchant_id,
            "email",
            suppression.key("email", to),
            customer_id=card.customer_id if card is not None else None,
            code=code,
        )


def _mark(send_id: object, status: str) -> None:
    if not isinstance(send_id, int):
        return
    with db.transaction() as session:
        session.execute(update(CardSend).where(CardSend.id == send_id).values(status=status))


def send_card_sms(msg: Delivery) -> None:
    """sms.card: the card's link by SMS; SMS.ru's sms_id is kept to follow its delivery."""
    if msg.merchant_id is None:
        raise Permanent("an SMS needs a merchant")
    phone, text = sms.open_payload(msg.merchant_id, msg.payload)
    with db.read() as session:
        config = sms.config_for(session.get(Merchant, msg.merchant_id))
    send_id = msg.payload.get("send_id")
    try:
        result = sms.build_provider(config).send(phone, text, sender=config.sender)
    except sms.SmsError as exc:
        if exc.permanent:
            _mark(send_id, "failed")
            raise Permanent(str(exc)) from exc
        raise Retry(str(exc)) from exc
    with db.transaction() as session:
        if isinstance(send_id, int):
            session.execute(update(CardSend).where(CardSend.id == send_id).values(status="sent"))
        reports.record_sms(
            session,
            msg.merchant_id,
            result.message_id,
            card_send_id=send_id if isinstance(send_id, int) else None,
            phone=phone,
        )
