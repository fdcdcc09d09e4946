"""HTTP API of subscriptions: plans, a sale at the till, uses without a purchase,
renewal, refund, look-ups and the report. A use inside a purchase goes through
`POST /api/v1/purchases` (`subscription`: its id), the quote too."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from loyalwallet import db
from loyalwallet.api.deps import IdemKey, manager
from loyalwallet.api.deps import actor as any_actor
from loyalwallet.api.responses import idempotent
from loyalwallet.cards.book import get_card
from loyalwallet.merchants.actors import Actor
from loyalwallet.subscriptions import ledger, reports, service
from loyalwallet.subscriptions.schemas import PlanChangeIn, PlanIn, RefundIn, RenewIn, SaleIn, UseIn

router = APIRouter(prefix="/api/v1", tags=["subscriptions"])


@router.post("/subscription-plans", status_code=201, summary="Create a subscription programme")
def create_plan(body: PlanIn, who: Actor = Depends(manager)) -> dict[str, Any]:
    with db.transaction() as session:
        return service.create_plan(session, who, body)


@router.get("/subscription-plans", summary="Subscription programmes")
def list_plans(who: Actor = Depends(any_actor)) -> dict[str, Any]:
    with db.read() as session:
        return {"items": service.list_plans(session, who.merchant_id)}


@router.patch("/subscription-plans/{plan_id}", summary="Rename, reprice or archive a programme")
def change_plan(plan_id: int, body: PlanChangeIn, who: Actor = Depends(manager)) -> dict[str, Any]:
    with db.transaction() as session:
        return service.change_plan(session, who, plan_id, body)


@router.post("/subscriptions", status_code=201, summary="Sell a subscription on a guest's card")
def sell(body: SaleIn, who: Actor = Depends(any_actor), idempotency_key: str | None = IdemKey) -> Response:
    with db.transaction() as session:
        return idempotent(*service.sell(session, who, body, idempotency_key))


@router.get("/subscriptions", summary="Subscriptions, newest first")
def list_subscriptions(
    status: str | None = Query(None, pattern="^(active|expired|refunded)$"),
    limit: int = Query(50, ge=1, le=500),
    who: Actor = Depends(manager),
) -> dict[str, Any]:
    with db.read() as session:
        return {"items": service.list_subscriptions(session, who, status, limit)}


@router.get("/subscriptions/report", summary="Active subscriptions, uses per day, revenue")
def report(
    since: dt.date | None = Query(None, alias="from"),
    until: dt.date | None = Query(None, alias="to"),
    who: Actor = Depends(manager),
) -> dict[str, Any]:
    with db.read() as session:
        return reports.summary(session, who.merchant_id, since, until)


@router.get("/cards/{code}/subscriptions", summary="A card's subscriptions (what is left, until when)")
def card_subscriptions(code: str, who: Actor = Depends(any_actor)) -> dict[str, Any]:
    with db.read() as session:
        card, _program = get_card(session, who.merchant_id, code)
        return {"items": service.of_card(session, who, card.id)}


@router.get("/subscriptions/{subscription_id}", summary="A subscription: units left, end, uses today")
def get_subscription(subscription_id: int, who: Actor = Depends(any_actor)) -> dict[str, Any]:
    with db.read() as session:
        return service.get(session, who, subscription_id)


@router.get("/subscriptions/{subscription_id}/entries", summary="A subscription's units ledger, newest first")
def subscription_entries(subscription_id: int, who: Actor = Depends(any_actor)) -> dict[str, Any]:
    with db.read() as session:
        sub = ledger.get(session, who.merchant_id, subscription_id, lock=False)
        return {"items": service.entries(session, sub)}


@router.post("/subscriptions/{subscription_id}/uses", status_code=201, summary="Use one unit (no purchase)")
def use(
    subscription_id: int,
    body: UseIn | None = None,
    who: Actor = Depends(any_actor),
    idempotency_key: str | None = IdemKey,
) -> Response:
    with db.transaction() as session:
        return idempotent(*service.use(session, who, subscription_id, body or UseIn(), idempotency_key))


@router.post("/subscriptions/{subscription_id}/renewals", status_code=201, summary="Renew for another period")
def renew(
    subscription_id: int,
    body: RenewIn | None = None,
    who: Actor = Depends(any_actor),
    idempotency_key: str | None = IdemKey,
) -> Response:
    with db.transaction() as session:
        return idempotent(*service.renew(session, who, subscription_id, body or RenewIn(), idempotency_key))


@router.post(
    "/subscriptions/{subscription_id}/refunds",
    status_code=201,
    summary="Cancel and refund the unused part (pro rata or per the plan)",
)
def refund(
    subscription_id: int,
    body: RefundIn | None = None,
    who: Actor = Depends(any_actor),
    idempotency_key: str | None = IdemKey,
) -> Response:
    with db.transaction() as session:
        return idempotent(*service.refund(session, who, subscription_id, body or RefundIn(), idempotency_key))
