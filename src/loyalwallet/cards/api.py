"""HTTP API of cards: enrol, look up by code or phone, history, adjustments, block."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from loyalwallet import db
from loyalwallet.api.deps import actor as any_actor
from loyalwallet.api.deps import manager
from loyalwallet.api.responses import FastJSON
from loyalwallet.cards import book as card_book
from loyalwallet.cards import service, views
from loyalwallet.cards.schemas import CardIn, CardPatch
from loyalwallet.checkout.schemas import AdjustmentIn
from loyalwallet.config import get_settings
from loyalwallet.customers.phones import to_e164
from loyalwallet.customers.service import GuestData, find_by_phone, record_consent
from loyalwallet.errors import DomainError
from loyalwallet.merchants.actors import Actor
from loyalwallet.programs.service import get_program

router = APIRouter(prefix="/api/v1", tags=["cards"])


@router.post("/cards", status_code=201, summary="Issue a card to a guest (or return theirs)")
def create_card(body: CardIn, who: Actor = Depends(any_actor)) -> Response:
    with db.transaction() as session:
        phone = to_e164(body.phone, get_settings().default_region)
        program = get_program(session, who.merchant_id, body.program_id)
        referrer = None
        if body.referrer:
            try:
                referrer, _ = card_book.get_card(session, who.merchant_id, body.referrer)
            except DomainError:
                raise DomainError(
                    "validation_error", "no card with that referrer code", field="referrer"
                ) from None
        guest = GuestData(phone=phone, name=body.name, email=body.email, birthday=body.birthday)
        card, created = service.enroll(session, who, program, guest, channel=body.channel, referrer=referrer)
        if body.marketing_consent is not None and card.customer_id is not None:
            from loyalwallet.customers.models import Customer

            customer = session.get(Customer, card.customer_id)
            assert customer is not None
            record_consent(session, customer, "marketing", body.marketing_consent, "api", "api")
        view = views.card_view(session, card, program, created=created)
    return FastJSON(view, status_code=201 if created else 200)


@router.get("/cards", summary="Find a guest's cards by phone (any common format)")
def find_cards(phone: str = Query(..., max_length=32), who: Actor = Depends(any_actor)) -> dict[str, Any]:
    with db.read() as session:
        customer = find_by_phone(session, who.merchant_id, phone)
        if customer is None:
            return {"items": []}
        items = [
            views.card_view(session, card, program)
            for card, program in card_book.cards_of_customer(session, customer)
        ]
    return {"items": items}


@router.get("/cards/{code}", summary="A card by the code its barcode holds")
def get_card(code: str, who: Actor = Depends(any_actor)) -> dict[str, Any]:
    with db.read() as session:
        card, program = card_book.get_card(session, who.merchant_id, code)
        return views.card_view(session, card, program)


@router.get("/cards/{code}/transactions", summary="Points and stamps history, newest first")
def transactions(
    code: str,
    limit: int = Query(100, ge=1, le=500),
    who: Actor = Depends(any_actor),
) -> dict[str, Any]:
    with db.read() as session:
        card, _ = card_book.get_card(session, who.merchant_id, code)
        return {"items": views.ledger_view(session, card, limit)}


@router.post("/cards/{code}/adjustments", status_code=201, summary="Manual correction (manager+)")
def adjust(code: str, body: AdjustmentIn, who: Actor = Depends(manager)) -> dict[str, Any]:
    with db.transaction() as session:
        card, program, book = service.adjust(
            session,
            who,
            code,
            points=body.points,
            stamps=body.stamps,
            reason=body.reason,
            stamp_kind=body.stamp_kind,
        )
        return {
            "points": body.points,
            "stamps": body.stamps,
            "reason": body.reason,
            "card": views.card_view(session, card, program, book=book),
        }


@router.patch("/cards/{code}", summary="Block or unblock a card (manager+)")
def patch_card(code: str, body: CardPatch, who: Actor = Depends(manager)) -> dict[str, Any]:
    with db.transaction() as session:
        card, program = service.set_status(session, who, code, body.status, body.reason)
        return views.card_view(session, card, program)
