"""Guests: the list with search (phone, card code, name), a guest's page with cards,
history and purchases, manual adjustments (with a reason, audit-logged), block/unblock,
and erasing a guest's personal data."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from loyalwallet import db
from loyalwallet.cards import service as cards
from loyalwallet.cards.book import cards_of_customer, get_card
from loyalwallet.cards.views import card_view, ledger_view
from loyalwallet.customers import directory, erasure
from loyalwallet.customers import service as customers
from loyalwallet.errors import DomainError, not_found
from loyalwallet.merchants.service import audit
from loyalwallet.messaging import suppression
from loyalwallet.messaging.service import sends_of as card_sends
from loyalwallet.web.pages import form_data, redirect, render_staff, staff_page
from loyalwallet.web.sessions import StaffSession

router = APIRouter(include_in_schema=False)


@router.get("/admin/guests")
def guests(
    request: Request,
    q: str = Query("", max_length=100),
    before: int | None = Query(None, ge=1),
    who: StaffSession = Depends(staff_page("manager")),
) -> Response:
    with db.read() as session:
        found, how = directory.find_guests(session, who.merchant_id, q, before)
        summaries = directory.card_summaries(session, [c.id for c in found])
        items = [
            {"guest": customers.view(c), "cards": summaries[c.id], "created_at": c.created_at} for c in found
        ]
    return render_staff(
        request,
        who,
        "admin/guests.html",
        {
            "items": items,
            "q": q,
            "how": how,
            "next_before": found[-1].id if len(found) == directory.PAGE else None,
        },
        section="guests",
    )


@router.get("/admin/guests/{customer_id}")
def guest(customer_id: int, request: Request, who: StaffSession = Depends(staff_page("manager"))) -> Response:
    with db.read() as session:
        customer = directory.get_guest(session, who.merchant_id, customer_id)
        data = customers.export(session, customer)
        bounced = suppression.mark_of(session, who.merchant_id, "email", data.get("email"))
        email_bounce = (
            {"code": bounced.code or "", "at": bounced.created_at.isoformat()}
            if bounced is not None
            else None
        )
        card_rows = []
        for card, program in cards_of_customer(session, customer):
            card_rows.append(
                {
                    "view": card_view(session, card, program, with_customer=False),
                    "history": ledger_view(session, card, limit=30),
                    "purchases": directory.recent_purchases(session, card.id),
                    "sends": card_sends(session, card.id, limit=10),
                }
            )
    return render_staff(
        request,
        who,
        "admin/guest.html",
        {"guest": data, "cards": card_rows, "customer_id": customer_id, "email_bounce": email_bounce},
        section="guests",
    )


@router.post("/admin/guests/{customer_id}/adjust")
async def adjust(
    customer_id: int, request: Request, who: StaffSession = Depends(staff_page("manager"))
) -> Response:
    form = await form_data(request, who)
    code = str(form.get("card") or "")
    try:
        points = int(str(form.get("points") or "0").strip() or 0)
        stamps = int(str(form.get("stamps") or "0").strip() or 0)
    except ValueError:
        raise DomainError("validation_error", "points and stamps are whole numbers") from None
    reason = str(form.get("reason") or "").strip()
    if len(reason) < 3:
        raise DomainError("validation_error", "give a reason (at least 3 characters)", field="reason")
    with db.transaction() as session:
        customer = directory.get_guest(session, who.merchant_id, customer_id)
        card, _ = get_card(session, who.merchant_id, code)
        if card.customer_id != customer.id:
            raise not_found("card")
        cards.adjust(session, who.actor, code, points=points, stamps=stamps, reason=reason[:500])
    return redirect(f"/admin/guests/{customer_id}", "Adjustment recorded.")


@router.post("/admin/guests/{customer_id}/status")
async def set_status(
    customer_id: int, request: Request, who: StaffSession = Depends(staff_page("manager"))
) -> Response:
    form = await form_data(request, who)
    with db.transaction() as session:
        customer = directory.get_guest(session, who.merchant_id, customer_id)
        card, _ = get_card(session, who.merchant_id, str(form.get("card") or ""))
        if card.customer_id != customer.id:
            raise not_found("card")
        cards.set_status(
            session,
            who.actor,
            card.code,
            str(form.get("status") or ""),
            str(form.get("reason") or "") or None,
        )
    return redirect(f"/admin/guests/{customer_id}", "Card status changed.")


@router.post("/admin/guests/{customer_id}/erase")
async def erase(
    customer_id: int, request: Request, who: StaffSession = Depends(staff_page("owner"))
) -> Response:
    form = await form_data(request, who)
    if str(form.get("confirm") or "") != "erase":
        raise DomainError("validation_error", "type erase to confirm", field="confirm")
    with db.transaction() as session:
        customer = directory.get_guest(session, who.merchant_id, customer_id)
        customers.erase(session, customer)
        audit(session, who.actor, "customer.erase", "customer", customer.id)
    erasure.after_commit()
    return redirect(f"/admin/guests/{customer_id}", "Personal data erased.")
