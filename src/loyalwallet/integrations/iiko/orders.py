"""iiko order webhooks: what a closed (or deleted) iiko order means for our cards.

iikoCloud POSTs a JSON array of events to the URL set in iikoWeb (webhooks of the API
login) with the token we gave in the Authorization header. Of them we read
TableOrderUpdate and DeliveryOrderUpdate whose order is Closed or Deleted:

- the order's customer is a guest of an iiko programme (IikoGuest): the card is marked
  active and an `iiko.sync` row is queued (the pass follows iiko's new balance);
- the merchant books iiko orders into one of our programmes (ledger_program_id) and the
  order's phone belongs to a guest holding a card there: an `iiko.order` row books the
  closed order as a purchase (idempotent by iiko order id) or reverses it when deleted.

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
        link = None
        if isinstance(customer, dict) and customer.get("id"):
            link = session.scalar(
                select(IikoGuest).where(
                    IikoGuest.merchant_id == merchant_id, IikoGuest.customer_id == str(customer["id"])
                )
            )
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
        if card_id is None:
            continue
        amount = _kopecks(order.get("sum"))
        payload = {
            "order_id": str(info.get("id")),
            "status": order["status"],
            "card_id": card_id,
            "amount": amount,
            "items": _lines(order),
        }
        enqueue(session, merchant_id, "iiko.order", payload)
        booked += 1
    return {"synced": synced, "orders": booked}


def _ledger_card(session: Session, conn: IikoConnection, order: dict[str, Any]) -> int | None:
    if conn.ledger_program_id is None:
        return None
    phone = order.get("phone") or (order.get("customer") or {}).get("phone")
    if not phone:
        return None
    try:
        customer = find_by_phone(session, conn.merchant_id, str(phone))
    except DomainError:
        return None
    if customer is None:
        return None
    return session.scalar(
        select(Card.id).where(Card.program_id == conn.ledger_program_id, Card.customer_id == customer.id)
    )


def book(msg: Delivery) -> None:
    """iiko.order: book a closed order as a purchase, reverse a deleted one. Idempotent by
    iiko order id (IikoOrder row and the purchase's Idempotency-Key)."""
    p = msg.payload
    merchant_id = msg.merchant_id
    try:
        order_id, status, card_id = str(p["order_id"]), str(p["status"]), int(p["card_id"])
    except (KeyError, TypeError, ValueError) as exc:
        raise Permanent(f"bad iiko.order payload: {exc!r}") from exc
    if merchant_id is None:
        raise Permanent("an iiko.order row without a merchant")
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
