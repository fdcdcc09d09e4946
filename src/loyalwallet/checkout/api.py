"""HTTP API of the checkout: quote, purchase (with Idempotency-Key), refunds."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from sqlalchemy import select

from loyalwallet import db
from loyalwallet.api.deps import IdemKey
from loyalwallet.api.deps import actor as any_actor
from loyalwallet.api.responses import idempotent
from loyalwallet.cards.book import get_card
from loyalwallet.checkout import service
from loyalwallet.checkout.models import Purchase
from loyalwallet.checkout.schemas import PurchaseIn, RefundIn
from loyalwallet.merchants.actors import Actor

router = APIRouter(prefix="/api/v1", tags=["checkout"])


@router.post("/purchases/quote", summary="What a purchase would do; writes nothing")
def quote(body: PurchaseIn, who: Actor = Depends(any_actor)) -> dict[str, Any]:
    with db.read() as session:
        return service.quote(session, who, body)


@router.post("/purchases", status_code=201, summary="Record a purchase: discount, points, stamps")
def purchase(
    body: PurchaseIn, who: Actor = Depends(any_actor), idempotency_key: str | None = IdemKey
) -> Response:
    with db.transaction() as session:
        status, answer, replayed = service.purchase(session, who, body, idempotency_key)
    return idempotent(status, answer, replayed)


@router.get("/purchases/{purchase_id}", summary="A purchase with its lines and refunds")
def get_purchase(purchase_id: int, who: Actor = Depends(any_actor)) -> dict[str, Any]:
    with db.read() as session:
        return service.purchase_view(session, service.get_purchase(session, who, purchase_id))


@router.get("/purchases", summary="Purchases, newest first (optionally of one card)")
def list_purchases(
    card: str | None = Query(None, max_length=64),
    external_id: str | None = Query(None, max_length=128),
    limit: int = Query(50, ge=1, le=500),
    who: Actor = Depends(any_actor),
) -> dict[str, Any]:
    with db.read() as session:
        stmt = select(Purchase).where(Purchase.merchant_id == who.merchant_id)
        if card is not None:
            c, _ = get_card(session, who.merchant_id, card)
            stmt = stmt.where(Purchase.card_id == c.id)
        if external_id is not None:
            stmt = stmt.where(Purchase.external_id == external_id)
        rows = session.scalars(stmt.order_by(Purchase.id.desc()).limit(limit)).all()
        return {"items": [service.purchase_view(session, p) for p in rows]}


@router.post(
    "/purchases/{purchase_id}/refunds", status_code=201, summary="Refund a purchase, whole or in part"
)
def refund(
    purchase_id: int,
    body: RefundIn | None = None,
    who: Actor = Depends(any_actor),
    idempotency_key: str | None = IdemKey,
) -> Response:
    with db.transaction() as session:
        status, answer, replayed = service.refund(
            session, who, purchase_id, body or RefundIn(), idempotency_key
        )
    return idempotent(status, answer, replayed)
