"""Purchases of the merchant, newest first, with the dashboard's filters."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import select
from starlette.responses import Response

from loyalwallet import db
from loyalwallet.analytics import service as analytics
from loyalwallet.cards.codes import normalise
from loyalwallet.cards.models import Card
from loyalwallet.checkout.models import Purchase
from loyalwallet.merchants.models import Location
from loyalwallet.programs.models import Program
from loyalwallet.web.pages import render_staff, staff_page
from loyalwallet.web.sessions import StaffSession

router = APIRouter(include_in_schema=False)
PAGE = 50


@router.get("/admin/purchases")
def purchases(
    request: Request,
    start: str | None = Query(None, alias="from", max_length=10),
    end: str | None = Query(None, alias="to", max_length=10),
    location: str | None = Query(None, max_length=12),
    card: str = Query("", max_length=64),
    before: int | None = Query(None, ge=1),
    who: StaffSession = Depends(staff_page("manager")),
) -> Response:
    location_id = int(location) if location and location.isdigit() else None
    with db.read() as session:
        f = analytics.filters_for(session, who.actor, start, end, location_id, None)
        lo, hi = f.period.utc_bounds()
        stmt = (
            select(Purchase, Card.code, Card.customer_id, Program.name, Location.name)
            .join(Card, Card.id == Purchase.card_id)
            .join(Program, Program.id == Purchase.program_id)
            .outerjoin(Location, Location.id == Purchase.location_id)
            .where(
                Purchase.merchant_id == who.merchant_id, Purchase.created_at >= lo, Purchase.created_at < hi
            )
        )
        if location_id is not None:
            stmt = stmt.where(Purchase.location_id == location_id)
        if card.strip():
            stmt = stmt.where(Card.code == normalise(card))
        if before:
            stmt = stmt.where(Purchase.id < before)
        rows = session.execute(stmt.order_by(Purchase.id.desc()).limit(PAGE)).all()
        locations = list(session.scalars(select(Location).where(Location.merchant_id == who.merchant_id)))
    return render_staff(
        request,
        who,
        "admin/purchases.html",
        {
            "rows": rows,
            "f": f,
            "card": card,
            "locations": locations,
            "next_before": rows[-1][0].id if len(rows) == PAGE else None,
        },
        section="purchases",
    )
