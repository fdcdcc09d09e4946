"""A guest's consents passed on to the iiko customer.

iiko's customer/create_or_update takes `consentStatus` (personal-data processing: 0
unknown, 1 given, 2 revoked) and `shouldReceivePromoActionsInfo` (promo messages by SMS
and e-mail; iiko assumes true for a new customer that is not told otherwise). Ours:
the personal-data consent recorded at joining (Consent rows), the marketing consent
(Customer.marketing_consent: given at joining, withdrawn by unsubscribing or the API),
and erasure (nothing consented any more).

Any change queues one `iiko.consent` row per guest (a transaction that records several
consents queues one); the handler sends the guest's state *as it is when delivered*, so
rows delivered late or twice send the same true values.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalwallet import db
from loyalwallet.cards.models import Card
from loyalwallet.customers.models import Consent, Customer
from loyalwallet.integrations.iiko.models import IikoGuest
from loyalwallet.outbox.handlers import Delivery, Permanent
from loyalwallet.outbox.service import enqueue

TOPIC = "iiko.consent"
GIVEN, REVOKED = 1, 2


def iiko_customers(session: Session, customer_id: int) -> list[str]:
    """The iiko customers of our guest (one per iiko connection; usually one)."""
    rows = session.scalars(
        select(IikoGuest.customer_id)
        .join(Card, Card.id == IikoGuest.card_id)
        .where(Card.customer_id == customer_id)
        .distinct()
    )
    return sorted(rows)


def consent_changed(session: Session, customer: Customer) -> None:
    """CONSENT_LISTENERS: queue the guest's consents for iiko when they hold an iiko card."""
    queued: set[int] = session.info.setdefault("iiko_consent_queued", set())
    if customer.id in queued or not iiko_customers(session, customer.id):
        return
    queued.add(customer.id)
    enqueue(session, customer.merchant_id, TOPIC, {"customer_id": customer.id})


def state(session: Session, customer: Customer) -> dict[str, Any]:
    """What iiko is told: shouldReceivePromoActionsInfo, and consentStatus when known."""
    if customer.erased_at is not None:
        return {"consentStatus": REVOKED, "shouldReceivePromoActionsInfo": False}
    last = session.scalar(
        select(Consent.granted)
        .where(Consent.customer_id == customer.id, Consent.kind == "personal_data")
        .order_by(Consent.id.desc())
        .limit(1)
    )
    body: dict[str, Any] = {"shouldReceivePromoActionsInfo": bool(customer.marketing_consent)}
    if last is not None:  # none recorded here (a card issued through the API): iiko's stays
        body["consentStatus"] = GIVEN if last else REVOKED
    return body


def iiko_consent(msg: Delivery) -> None:
    """iiko.consent {"customer_id"}: create_or_update of each iiko customer of the guest
    with the consents (by iiko id only: no personal data is sent again)."""
    from loyalwallet.integrations.iiko import handlers, service

    try:
        customer_id = int(msg.payload["customer_id"])
    except (KeyError, TypeError, ValueError) as exc:
        raise Permanent(f"bad iiko.consent payload: {exc!r}") from exc
    merchant_id = msg.merchant_id
    with db.read() as session:
        customer = session.get(Customer, customer_id)
        if customer is None or merchant_id is None or customer.merchant_id != merchant_id:
            return
        conn = service.connection(session, merchant_id)
        if conn is None:
            return  # disconnected since: nothing to tell
        client = service.client_for(conn)
        body = state(session, customer)
        ids = iiko_customers(session, customer_id)

    def send() -> None:
        for iiko_id in ids:
            client.create_or_update({"id": iiko_id, **body})

    handlers.guarded(merchant_id, send)
