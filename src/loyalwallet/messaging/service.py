"""Sending a card to its guest: the link by SMS or e-mail, or the card itself (its QR,
figures and buttons) to the Telegram chat the guest bound to it (tgcard), recorded, limited per card, and only to a guest who has not withdrawn
consent to the processing of personal data.

The send is queued in the caller's transaction (outbox): `sms` through the enrollment
SMS provider, `email.send` through messaging.handlers; the text is composed in the
guest's language.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalwallet import crypto, db
from loyalwallet.cards.book import get_card
from loyalwallet.cards.models import Card
from loyalwallet.customers.models import Consent, Customer
from loyalwallet.enrollment.links import base_url
from loyalwallet.errors import DomainError, Explained
from loyalwallet.merchants.actors import Actor
from loyalwallet.merchants.service import audit, get_merchant
from loyalwallet.messaging import rules, suppression
from loyalwallet.messaging.models import CardSend
from loyalwallet.outbox.service import enqueue
from loyalwallet.text import gettext_for
from loyalwallet.tgcard import service as tgcard

EMAIL_TOPIC = "email.send"
SMS_TOPIC = "sms.card"


def _sealed(merchant_id: int, column: str, value: str) -> str:
    blob = crypto.seal(value, merchant_id=merchant_id, column=column)
    assert blob is not None
    return base64.b64encode(blob).decode()


def queue_card_sms(session: Session, merchant_id: int, send_id: int, phone: str, text: str) -> None:
    """The card's link by SMS: like enrollment's `sms` rows (phone and text sealed), but
    delivered by messaging.handlers.send_card_sms, which keeps SMS.ru's sms_id."""
    enqueue(
        session,
        merchant_id,
        SMS_TOPIC,
        {
            "phone": _sealed(merchant_id, "sms_phone", phone),
            "text": _sealed(merchant_id, "sms_text", text),
            "send_id": send_id,
        },
        max_attempts=6,
    )


def _consent_withdrawn(session: Session, customer: Customer) -> bool:
    """The guest's latest word on personal-data processing was "no"."""
    latest = session.scalar(
        select(Consent.granted)
        .where(Consent.customer_id == customer.id, Consent.kind == "personal_data")
        .order_by(Consent.created_at.desc(), Consent.id.desc())
        .limit(1)
    )
    return latest is False


def _check_limit(session: Session, card: Card, now: dt.datetime) -> None:
    window = max(limit.window for limit in rules.LIMITS)
    sends = list(
        session.scalars(
            select(CardSend.created_at).where(CardSend.card_id == card.id, CardSend.created_at > now - window)
        )
    )
    wait = rules.retry_after(rules.LIMITS, sends, now)
    if wait is not None:
        raise Explained(
            "rate_limited",
            "the card was sent recently; try again in {wait} s",
            wait=wait,
            extra={"retry_after": wait},
        )


def send_card(
    session: Session, actor: Actor, code: str, channel: str, *, now: dt.datetime | None = None
) -> dict[str, Any]:
    """Queue the card's link to its guest. DomainError (validation_error, not_found,
    card_blocked, conflict, channel_unavailable, email_bounced, consent_required,
    rate_limited) before
    anything is written."""
    actor.require("cashier")
    now = now or db.utcnow()
    if channel not in rules.CHANNELS:
        raise Explained(
            "validation_error",
            "channel is one of {channels}",
            channels=", ".join(rules.CHANNELS),
            extra={"field": "channel"},
        )
    card, program = get_card(session, actor.merchant_id, code)
    if card.status != "active":
        raise DomainError("card_blocked")
    customer = session.get(Customer, card.customer_id) if card.customer_id else None
    if customer is None or customer.erased_at is not None:
        raise DomainError("conflict", "the card has no guest to send it to")
    if _consent_withdrawn(session, customer):
        raise DomainError("consent_required", "the guest withdrew consent to the processing of personal data")
    merchant = get_merchant(session, actor.merchant_id)
    lang = customer.locale or merchant.locale or "ru"
    _ = gettext_for(lang)
    web_url = f"{base_url().rstrip('/')}/c/{card.public_token}"
    send = CardSend(
        merchant_id=merchant.id,
        card_id=card.id,
        channel=channel,
        actor_type=actor.kind,
        actor_id=actor.id,
        status="queued",
        created_at=now,
    )
    if channel == "sms":
        phone = crypto.open_(customer.phone_enc, merchant_id=merchant.id, column="phone")
        if not phone:
            raise DomainError("channel_unavailable", "the guest has no phone number")
        _check_limit(session, card, now)
        session.add(send)
        session.flush()
        queue_card_sms(
            session,
            merchant.id,
            send.id,
            phone,
            rules.sms_text(merchant.name, web_url, _("your loyalty card:")),
        )
    elif channel == "email":
        email = crypto.open_(customer.email_enc, merchant_id=merchant.id, column="email")
        if not email:
            raise DomainError("channel_unavailable", "the guest has no e-mail address")
        mark = suppression.mark_of(session, merchant.id, "email", email)
        if mark is not None:
            raise Explained(
                "email_bounced",
                "the guest's e-mail address bounced ({code}); e-mails go again once the guest gives a new address",
                code=mark.code or "5.0.0",
                extra={"bounced_at": mark.created_at.isoformat()},
            )
        _check_limit(session, card, now)
        session.add(send)
        session.flush()
        sealed = crypto.seal(email, merchant_id=merchant.id, column="email_to") or b""
        enqueue(
            session,
            merchant.id,
            EMAIL_TOPIC,
            {
                "kind": "card",
                "card_id": card.id,
                "send_id": send.id,
                "to": base64.b64encode(sealed).decode(),
                "lang": lang,
            },
            max_attempts=8,
        )
    else:
        if tgcard.binding(session, card.id) is None:
            raise DomainError("channel_unavailable", "the guest has not bound a Telegram chat to this card")
        _check_limit(session, card, now)
        session.add(send)
        session.flush()
        tgcard.send_card(session, card)
    audit(session, actor, "card.send", "card", card.id, {"channel": channel})
    return {
        "id": send.id,
        "card": card.code,
        "channel": channel,
        "status": "queued",
        "program_id": program.id,
    }


def sends_of(session: Session, card_id: int, limit: int = 20) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(CardSend).where(CardSend.card_id == card_id).order_by(CardSend.id.desc()).limit(limit)
    )
    return [
        {
            "channel": s.channel,
            "status": s.status,
            "created_at": s.created_at.isoformat(),
            "actor_type": s.actor_type,
        }
        for s in rows
    ]
