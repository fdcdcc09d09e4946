"""iiko order webhooks: what a closed (or deleted) iiko order means for our cards.

iikoCloud POSTs a JSON array of events to the URL set in iikoWeb (webhooks of the API
login) with the token we gave in the Authorization header. Of them we read
TableOrderUpdate and DeliveryOrderUpdate whose order is Closed or Deleted:

- the order's customer is a guest of an iiko programme (IikoGuest): the card is marked
  active and an `iiko.sync` row is queued (the pass follows iiko's new balance);
- the merchant books iiko orders into one of our programmes (ledger_program_id) and the
  order's phone belongs to a guest holding a card there: an `iiko.order` row books the
  closed order as a purchase (idempotent by iiko order id) or reverses it when deleted.

The guest is found by the order's iiko customer (its id, which iikoFront sets when the
barista scans the guest's card), else by the order's phone. When only the iiko customer
id is there and we hold no link for it (a guest of our programme who rang up in iiko
with the card this programme gave them, or an iiko guest iiko merged), the `iiko.order`
row carries that id and its handler asks iiko (customer/info) for the customer's cards:
the card whose number or track is our card's code is the guest's, then iiko's phone.

The receiver only queues rows (quick answer to iiko); phones are looked up by their
blind index and never put into the outbox or logs.
"""

from __future__ import annotations

import hmac
import logging
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalwallet import db
from loyalwallet.cards.models import Card
from loyalwallet.checkout import service as checkout
from loyalwallet.checkout.schemas import PurchaseIn, RefundIn
from loyalwallet.customers.service import find_by_phone
from loyalwallet.db import utcnow
from loyalwallet.errors import DomainError
from loyalwallet.integrations.iiko import guests
from loyalwallet.integrations.iiko.client import Guest
from loyalwallet.integrations.iiko.models import IikoConnection, IikoGuest, IikoOrder
from loyalwallet.merchants.actors import system
from loyalwallet.outbox.handlers import Delivery, Permanent
from loyalwallet.outbox.service import enqueue

log = logging.getLogger("loyalwallet.iiko")
ORDER_EVENTS = {"TableOrderUpdate", "DeliveryOrderUpdate"}
FINAL = {"Closed", "Deleted"}


def _kopecks(value: Any) -> int | None:
    try:
        return int((Decimal(str(value)) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    except (InvalidOperation, ValueError, TypeError):
        return None


def _lines(order: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for item in order.get("items") or []:
        if not isinstance(item, dict) or item.get("deleted"):
            continue
        product = item.get("product") or {}
        total = _kopecks(item.get("resultSum") if item.get("resultSum") is not None else item.get("cost"))
        if total is None or total <= 0:
            continue
        out.append(
            {
                "sku": str(product.get("id") or "")[:64] or None,
                "name": str(product.get("name") or "")[:200] or None,
                "qty": 1,
                "price": total,
            }
        )
    return out


def receive(session: Session, merchant_id: int, token: str | None, events: Any) -> dict[str, int]:
    """Check the token and queue what the events mean. DomainError on a wrong token or body."""
    conn = session.scalar(select(IikoConnection).where(IikoConnection.merchant_id == merchant_id))
    given = (token or "").removeprefix("Bearer ").strip()
    if conn is None or not given or not hmac.compare_digest(given.encode(), conn.webhook_token.encode()):
        raise DomainError("unauthorized", "wrong iiko webhook token")
    if not isinstance(events, list):
        raise DomainError("validation_error", "an iiko webhook body is a JSON array of events")
    synced = booked = 0
    now = utcnow()
    for event in events:
        if not isinstance(event, dict) or event.get("eventType") not in ORDER_EVENTS:
            continue
        if event.get("organizationId") != conn.organization_id:
            continue
        info = event.get("eventInfo") or {}
        order = info.get("order") if isinstance(info, dict) else None
        if not isinstance(order, dict) or order.get("status") not in FINAL:
            continue
        customer = order.get("customer") or {}
        iiko_id = str(customer["id"]) if isinstance(customer, dict) and customer.get("id") else None
        link = None
        if iiko_id is not None:
            link = session.scalar(
                select(IikoGuest).where(
                    IikoGuest.merchant_id == merchant_id, IikoGuest.customer_id == iiko_id
                )
            )
        if link is None:
            link = _link_by_phone(session, conn, order)
        if link is not None:
            link.activity_at = now
            enqueue(
                session,
                merchant_id,
                "iiko.sync",
                {"card_ids": [link.card_id], "order_id": str(info.get("id"))},
            )
            synced += 1
            continue
        card_id = _ledger_card(session, conn, order)
        if card_id is None and iiko_id is None:
            continue
        amount = _kopecks(order.get("sum"))
        payload = {
            "order_id": str(info.get("id")),
            "status": order["status"],
            "card_id": card_id,  # None: found by the iiko customer's cards when delivered
            "iiko_customer_id": iiko_id,
            "amount": amount,
            "items": _lines(order),
        }
        enqueue(session, merchant_id, "iiko.order", payload)
        booked += 1
    return {"synced": synced, "orders": booked}


def _customer_by_phone(session: Session, merchant_id: int, phone: Any) -> int | None:
    if not phone:
        return None
    try:
        customer = find_by_phone(session, merchant_id, str(phone))
    except DomainError:
        return None
    return customer.id if customer is not None else None


def _order_phone(order: dict[str, Any]) -> Any:
    customer = order.get("customer")
    return order.get("phone") or (customer.get("phone") if isinstance(customer, dict) else None)


def _link_by_phone(session: Session, conn: IikoConnection, order: dict[str, Any]) -> IikoGuest | None:
    """The iiko programme's guest whose phone the order carries (no iiko customer on it)."""
    customer_id = _customer_by_phone(session, conn.merchant_id, _order_phone(order))
    if customer_id is None:
        return None
    return session.scalar(
        select(IikoGuest)
        .join(Card, Card.id == IikoGuest.card_id)
        .where(IikoGuest.merchant_id == conn.merchant_id, Card.customer_id == customer_id)
        .limit(1)
    )


def _ledger_card(session: Session, conn: IikoConnection, order: dict[str, Any]) -> int | None:
    if conn.ledger_program_id is None:
        return None
    customer_id = _customer_by_phone(session, conn.merchant_id, _order_phone(order))
    if customer_id is None:
        return None
    return session.scalar(
        select(Card.id).where(Card.program_id == conn.ledger_program_id, Card.customer_id == customer_id)
    )


def card_of_iiko_customer(session: Session, conn: IikoConnection, info: Guest) -> tuple[str, int] | None:
    """What iiko's customer holds of ours: ("relink", card id) for the iiko programme's
    card found by its number or track, ("sync", card id) for one found by phone, or
    ("book", card id) for the ledger programme's card (its code is the number or track;
    then the phone iiko has)."""
    numbers = set(info.card_numbers) | set(info.card_tracks)
    if numbers:
        link = session.scalar(
            select(IikoGuest).where(
                IikoGuest.merchant_id == conn.merchant_id, IikoGuest.card_number.in_(sorted(numbers))
            )
        )
        if link is not None:  # the card is the identity iikoFront uses
            return "relink", link.card_id
        if conn.ledger_program_id is not None:
            card_id = session.scalar(
                select(Card.id).where(
                    Card.program_id == conn.ledger_program_id, Card.code.in_(sorted(numbers))
                )
            )
            if card_id is not None:
                return "book", card_id
    if info.phone:
        by_phone = _link_by_phone(session, conn, {"phone": info.phone})
        if by_phone is not None:
            return "sync", by_phone.card_id
        card_id = _ledger_card(session, conn, {"phone": info.phone})
        if card_id is not None:
            return "book", card_id
    return None


def _relink(merchant_id: int, card_id: int, iiko_customer_id: str) -> None:
    """Our iiko card now sits on another iiko customer (iiko merged two, or the dealer
    moved the card): follow the customer that holds the card, unless another card of
    ours is linked to it already."""
    with db.transaction() as session:
        link = session.get(IikoGuest, card_id)
        taken = session.scalar(
            select(IikoGuest.card_id).where(
                IikoGuest.merchant_id == merchant_id, IikoGuest.customer_id == iiko_customer_id
            )
        )
        if link is not None and taken is None:
            link.customer_id = iiko_customer_id


def _resolve(merchant_id: int, iiko_customer_id: str) -> tuple[str, int] | None:
    """Our card of an iiko customer, asking iiko for its cards (outage: Retry)."""
    from loyalwallet.integrations.iiko import handlers, service

    with db.read() as session:
        conn = service.connection(session, merchant_id)
        if conn is None:
            return None
        client = service.client_for(conn)
    info = handlers.guarded(merchant_id, lambda: client.find("id", iiko_customer_id))
    if info is None:
        return None
    with db.read() as session:
        conn = service.require(session, merchant_id)
        return card_of_iiko_customer(session, conn, info)


def book(msg: Delivery) -> None:
    """iiko.order: book a closed order as a purchase, reverse a deleted one. Idempotent by
    iiko order id (IikoOrder row and the purchase's Idempotency-Key)."""
    p = msg.payload
    merchant_id = msg.merchant_id
    if merchant_id is None:
        raise Permanent("an iiko.order row without a merchant")
    if p.get("card_id") is None and p.get("iiko_customer_id"):
        found = _resolve(merchant_id, str(p["iiko_customer_id"]))
        if found is None:
            return  # iiko's customer holds none of our cards: not our guest
        action, card_id = found
        if action == "relink":
            _relink(merchant_id, card_id, str(p["iiko_customer_id"]))
        if action in ("sync", "relink"):
            from loyalwallet.integrations.iiko import handlers

            handlers.guarded(merchant_id, lambda: guests.sync_cards(merchant_id, [card_id]))
            return
        p = {**p, "card_id": card_id}
    try:
        order_id, status, card_id = str(p["order_id"]), str(p["status"]), int(p["card_id"])
    except (KeyError, TypeError, ValueError) as exc:
        raise Permanent(f"bad iiko.order payload: {exc!r}") from exc
    actor = system(merchant_id)
    try:
        with db.transaction() as session:
            row = session.scalar(
                select(IikoOrder).where(IikoOrder.merchant_id == merchant_id, IikoOrder.order_id == order_id)
            )
            now = utcnow()
            if status == "Closed":
                if row is not None:
                    return  # booked (or reversed) before: a repeated webhook
                card = session.get(Card, card_id)
                amount = p.get("amount")
                if card is None or not isinstance(amount, int) or amount <= 0:
                    session.add(
                        IikoOrder(
                            merchant_id=merchant_id,
                            order_id=order_id,
                            state="skipped",
                            created_at=now,
                            updated_at=now,
                        )
                    )
                    return
                items = p.get("items") or None
                if items and sum(i["price"] * i["qty"] for i in items) != amount:
                    items = None  # iiko's lines do not add up to the check (discounts): the total only
                body = PurchaseIn(card=card.code, amount=amount, items=items, external_id=f"iiko:{order_id}")
                _status, response, _replayed = checkout.purchase(
                    session, actor, body, f"iiko-order:{order_id}"
                )
                session.add(
                    IikoOrder(
                        merchant_id=merchant_id,
                        order_id=order_id,
                        purchase_id=int(response["id"]),
                        state="booked",
                        created_at=now,
                        updated_at=now,
                    )
                )
            elif status == "Deleted":
                if row is None:
                    session.add(
                        IikoOrder(
                            merchant_id=merchant_id,
                            order_id=order_id,
                            state="skipped",
                            created_at=now,
                            updated_at=now,
                        )
                    )
                    return
                if row.state != "booked" or row.purchase_id is None:
                    return
                checkout.refund(
                    session,
                    actor,
                    row.purchase_id,
                    RefundIn(reason=f"iiko order {order_id} deleted"),
                    f"iiko-order-deleted:{order_id}",
                )
                row.state, row.updated_at = "reversed", now
    except DomainError as exc:
        log.warning("iiko order %s for card %s not booked: %s", order_id, card_id, exc.code)
        raise Permanent(f"iiko order {order_id}: {exc.detail}") from exc
