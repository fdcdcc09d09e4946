"""Guests: the list with search (phone, card code, name), a guest's page with cards,
history and purchases, manual adjustments (with a reason, audit-logged), block/unblock,
and erasing a guest's personal data."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import select
from starlette.responses import Response

from loyalwallet import db
from loyalwallet.cards import service as cards
from loyalwallet.cards.codes import normalise
from loyalwallet.cards.models import Card
from loyalwallet.checkout.models import Purchase
from loyalwallet.customers import service as customers
from loyalwallet.customers.models import Customer
from loyalwallet.errors import DomainError, not_found
from loyalwallet.merchants.service import audit
from loyalwallet.programs.models import Program
from loyalwallet.search import rules as name_rules
from loyalwallet.search import service as name_search
from loyalwallet.web.pages import form_data, redirect, render_staff, staff_page
from loyalwallet.web.sessions import StaffSession

router = APIRouter(include_in_schema=False)
PAGE = 50
PHONE_LIKE = re.compile(r"^[+\d][\d\s()\-]{6,}$")


def _summaries(session: Any, customer_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {cid: [] for cid in customer_ids}
    if not customer_ids:
        return out
    rows = session.execute(
        select(Card, Program.name, Program.kind)
        .join(Program, Program.id == Card.program_id)
        .where(Card.customer_id.in_(customer_ids))
        .order_by(Card.id)
    ).all()
    for card, name, kind in rows:
        out[card.customer_id].append({"card": card, "program": name, "kind": kind})
    return out


def _find(session: Any, merchant_id: int, q: str, before: int | None) -> tuple[list[Customer], str]:
    """Guests matching `q` (newest first) and how they were found."""
    q = q.strip()
    base = select(Customer).where(Customer.merchant_id == merchant_id)
    if not q:
        stmt = base.where(Customer.id < before) if before else base
        return list(session.scalars(stmt.order_by(Customer.id.desc()).limit(PAGE))), "all"
    if PHONE_LIKE.match(q):
        try:
            found = customers.find_by_phone(session, merchant_id, q)
        except DomainError:
            found = None
        if found is not None:
            return [found], "phone"
    code = normalise(q)
    card = session.scalar(select(Card).where(Card.merchant_id == merchant_id, Card.code == code))
    if card is not None and card.customer_id is not None:
        customer = session.get(Customer, card.customer_id)
        return ([customer] if customer else []), "card"
    # Names are sealed: the token index narrows down, decryption confirms.
    ids = name_search.search(session, merchant_id, q, limit=PAGE * 2)
    if before:
        ids = [i for i in ids if i < before]
    rows = session.scalars(base.where(Customer.id.in_(ids)).order_by(Customer.id.desc())).all() if ids else []
    return [c for c in rows if name_rules.matches(customers.view(c)["name"], q)][:PAGE], "name"


@router.get("/admin/guests")
def guests(
    request: Request,
    q: str = Query("", max_length=100),
    before: int | None = Query(None, ge=1),
    who: StaffSession = Depends(staff_page("manager")),
) -> Response:
    with db.read() as session:
        found, how = _find(session, who.merchant_id, q, before)
        summaries = _summaries(session, [c.id for c in found])
        items = [
            {"guest": customers.view(c), "cards": summaries[c.id], "created_at": c.created_at} for c in found
        ]
    return render_staff(
        request,
        who,
        "admin/guests.html",
        {"items": items, "q": q, "how": how, "next_before": found[-1].id if len(found) == PAGE else None},
        section="guests",
    )


def _customer(session: Any, who: StaffSession, customer_id: int) -> Customer:
    customer = session.get(Customer, customer_id)
    if customer is None or customer.merchant_id != who.merchant_id:
        raise not_found("guest")
    return customer


@router.get("/admin/guests/{customer_id}")
def guest(customer_id: int, request: Request, who: StaffSession = Depends(staff_page("manager"))) -> Response:
    with db.read() as session:
        customer = _customer(session, who, customer_id)
        data = customers.export(session, customer)
        card_rows = []
        for card, program in cards.cards_of_customer(session, customer):
            purchases = session.scalars(
                select(Purchase).where(Purchase.card_id == card.id).order_by(Purchase.id.desc()).limit(20)
            ).all()
            card_rows.append(
                {
                    "view": cards.card_view(session, card, program, with_customer=False),
                    "history": cards.ledger_view(session, card, limit=30),
                    "purchases": purchases,
                }
            )
    return render_staff(
        request,
        who,
        "admin/guest.html",
        {"guest": data, "cards": card_rows, "customer_id": customer_id},
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
        customer = _customer(session, who, customer_id)
        card, _ = cards.get_card(session, who.merchant_id, code)
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
        customer = _customer(session, who, customer_id)
        card, _ = cards.get_card(session, who.merchant_id, str(form.get("card") or ""))
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
        customer = _customer(session, who, customer_id)
        customers.erase(session, customer)
        audit(session, who.actor, "customer.erase", "customer", customer.id)
    return redirect(f"/admin/guests/{customer_id}", "Personal data erased.")
