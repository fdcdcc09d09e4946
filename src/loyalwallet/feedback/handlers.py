"""What feedback does when an outbox row arrives: after a purchase, the card's message
invites the guest to rate the visit (Apple changeMessage via Card.message, a Google
Wallet message, the web card's button)."""

from __future__ import annotations

from loyalwallet import db
from loyalwallet.campaigns.delivery import google_cards, message_card
from loyalwallet.cards.book import lock_card
from loyalwallet.checkout.models import Purchase
from loyalwallet.customers.models import Customer
from loyalwallet.errors import DomainError
from loyalwallet.feedback import rules
from loyalwallet.feedback.service import rate_url, settings_of
from loyalwallet.merchants.models import Merchant
from loyalwallet.outbox.handlers import Delivery
from loyalwallet.text import gettext_for


def invite(msg: Delivery) -> None:
    """EVENT_LISTENERS entry: on purchase.created, when the merchant asks for feedback."""
    if msg.payload.get("name") != "purchase.created" or msg.merchant_id is None:
        return
    data = msg.payload.get("data") or {}
    code, purchase_id = data.get("card"), data.get("id")
    if not code or not isinstance(purchase_id, int):
        return
    with db.read() as session:
        merchant = session.get(Merchant, msg.merchant_id)
        if merchant is None or not settings_of(merchant).enabled:
            return
    with db.transaction() as session:
        try:
            card, program = lock_card(session, msg.merchant_id, code)
        except DomainError:
            return
        purchase = session.get(Purchase, purchase_id)
        now = db.utcnow()
        if (
            purchase is None
            or purchase.card_id != card.id
            or card.status != "active"
            or card.customer_id is None
            or now - purchase.created_at > rules.ANSWER_WINDOW
        ):
            return
        customer = session.get(Customer, card.customer_id)
        if customer is None or customer.erased_at is not None:
            return
        _ = gettext_for(customer.locale or merchant.locale or "ru")
        header = _("Rate your visit")
        body = _("Thank you for your visit! Rate it: %(url)s") % {"url": rate_url(card, purchase.id)}
        message_card(
            session,
            card,
            program,
            header=header,
            body=body,
            message_id=f"feedback-{purchase.id}",
            source="feedback",
            source_id=purchase.id,
            reason="feedback",
            google=bool(google_cards(session, [card.id])),
            now=now,
        )
