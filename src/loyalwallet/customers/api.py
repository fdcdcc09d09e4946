"""HTTP API of guests' personal data: export (a data-subject request) and erasure."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from loyalwallet import db
from loyalwallet.api.deps import manager, owner
from loyalwallet.cards.book import CardBook, cards_of_customer
from loyalwallet.customers import erasure, service
from loyalwallet.errors import not_found
from loyalwallet.merchants.actors import Actor
from loyalwallet.merchants.service import audit

router = APIRouter(prefix="/api/v1", tags=["guests"])


class EraseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone: Annotated[StrictStr, Field(min_length=1, max_length=32)]
    reason: Annotated[StrictStr, Field(max_length=500)] | None = None


@router.get("/customers/export", summary="Everything stored about a guest (manager+)")
def export(phone: str = Query(..., max_length=32), who: Actor = Depends(manager)) -> dict[str, Any]:
    with db.transaction() as session:
        customer = service.find_by_phone(session, who.merchant_id, phone)
        if customer is None:
            raise not_found("guest")
        data = service.export(session, customer)
        data["cards"] = [
            {"code": c.code, "program_id": c.program_id, "balance": c.balance, "stamps": c.stamps}
            for c, _ in cards_of_customer(session, customer)
        ]
        audit(session, who, "customer.export", "customer", customer.id)
        return data


@router.post("/customers/erase", summary="Forget a guest's personal data (owner)")
def erase(body: EraseIn, who: Actor = Depends(owner)) -> dict[str, Any]:
    with db.transaction() as session:
        customer = service.find_by_phone(session, who.merchant_id, body.phone)
        if customer is None:
            raise not_found("guest")
        values = service.erase(session, customer)
        # Wallets still show the holder's name: refresh every card of the guest.
        for card, program in cards_of_customer(session, customer):
            CardBook(session, card, program).touch("erase")
        reason = erasure.redact(body.reason, values)
        audit(session, who, "customer.erase", "customer", customer.id, {"reason": reason})
        answer = {"erased": True, "customer_id": customer.id}
    erasure.after_commit()
    return answer
