"""The cashier's subscription page: find a guest's card, sell a programme, use one unit
(the cup handed over), renew, refund the unused part; a manager adds programmes here.
A use inside a sale goes through the cashier screen or `POST /api/v1/purchases`."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import RedirectResponse, Response

from loyalwallet import db
from loyalwallet.cards.book import get_card
from loyalwallet.certificates.pages import parse_amount
from loyalwallet.errors import DomainError, Explained, translated
from loyalwallet.subscriptions import service
from loyalwallet.subscriptions.schemas import CoversIn, PlanIn, RefundIn, RenewIn, SaleIn, UseIn
from loyalwallet.text import gettext_for
from loyalwallet.web.pages import form_data, render_staff, staff_language, staff_page
from loyalwallet.web.sessions import StaffSession

router = APIRouter(include_in_schema=False)
PAGE = "/cashier/subscriptions"


def _field(form: Any, name: str) -> str | None:
    value = form.get(name)
    return value.strip() or None if isinstance(value, str) else None


def _int(form: Any, name: str) -> int | None:
    value = _field(form, name)
    if value is None:
        return None
    if not value.isdigit():
        raise Explained("validation_error", "{name} is a whole number", name=name, extra={"field": name})
    return int(value)


def _page(request: Request, who: StaffSession, card: str | None, **ctx: Any) -> Response:
    context: dict[str, Any] = {"card": card or "", "subs": None, "error": None, "done": None, **ctx}
    with db.read() as session:
        context["plans"] = service.list_plans(session, who.merchant_id, active_only=True)
        if card:  # the card's subscriptions stay on the page after a refused action too
            try:
                found, _program = get_card(session, who.merchant_id, card)
                context["subs"] = service.of_card(session, who.actor, found.id)
            except DomainError as exc:
                context["error"] = context["error"] or translated(
                    exc, gettext_for(staff_language(request, who))
                )
    status = 422 if context["error"] else 200
    return render_staff(
        request, who, "subscriptions/cashier.html", context, section="subscriptions", status=status
    )


@router.get(PAGE)
def subscriptions_page(
    request: Request,
    card: str | None = Query(None, max_length=64),
    who: StaffSession = Depends(staff_page("cashier")),
) -> Response:
    return _page(request, who, card)


@router.post(PAGE + "/sell")
async def sell(request: Request, who: StaffSession = Depends(staff_page("cashier"))) -> Response:
    form = await form_data(request, who)
    card = _field(form, "card") or ""
    try:
        body = SaleIn(plan_id=_int(form, "plan_id") or 0, card=card)
        with db.transaction() as session:
            service.sell(session, who.actor, body)
    except DomainError as exc:
        return _page(request, who, card, error=translated(exc, gettext_for(staff_language(request, who))))
    except ValueError as exc:
        return _page(request, who, card, error=str(exc).splitlines()[0])
    return RedirectResponse(f"{PAGE}?card={quote(card)}", status_code=303)


@router.post(PAGE + "/{subscription_id}/{action}")
async def act(
    request: Request, subscription_id: int, action: str, who: StaffSession = Depends(staff_page("cashier"))
) -> Response:
    """use | renew | refund (refund: an amount typed, or the plan's policy)."""
    form = await form_data(request, who)
    card = _field(form, "card") or ""
    try:
        with db.transaction() as session:
            if action == "use":
                service.use(session, who.actor, subscription_id, UseIn())
            elif action == "renew":
                service.renew(session, who.actor, subscription_id, RenewIn())
            elif action == "refund":
                typed = _field(form, "amount")
                amount = parse_amount(typed) if typed else None
                service.refund(session, who.actor, subscription_id, RefundIn(amount=amount))
            else:
                raise DomainError("not_found", "no such action")
    except DomainError as exc:
        return _page(request, who, card, error=translated(exc, gettext_for(staff_language(request, who))))
    return RedirectResponse(f"{PAGE}?card={quote(card)}", status_code=303)


@router.post(PAGE + "/plans")
async def create_plan(request: Request, who: StaffSession = Depends(staff_page("manager"))) -> Response:
    form = await form_data(request, who)
    try:
        body = PlanIn(
            name=_field(form, "name") or "",
            units=_int(form, "units") or 0,
            period_days=_int(form, "period_days") or 0,
            daily_limit=_int(form, "daily_limit"),
            price=parse_amount(_field(form, "price") or ""),
            covers=CoversIn(
                skus=[s.strip() for s in (_field(form, "skus") or "").split(",") if s.strip()],
                categories=[c.strip() for c in (_field(form, "categories") or "").split(",") if c.strip()],
            ),
            refund_policy="none" if form.get("refund_policy") == "none" else "pro_rata",
        )
        with db.transaction() as session:
            service.create_plan(session, who.actor, body)
    except DomainError as exc:
        return _page(request, who, None, error=translated(exc, gettext_for(staff_language(request, who))))
    except ValueError as exc:
        return _page(request, who, None, error=str(exc).splitlines()[0])
    return RedirectResponse(PAGE, status_code=303)
