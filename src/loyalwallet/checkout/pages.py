"""The cashier screen, and the admin's list of purchases.

The cashier page itself is static; its JavaScript (static/cashier.js) calls the POS API
(/api/v1/cards, /purchases/quote, /purchases, /refunds) with the staff session, plus the
two plastic-card endpoints below. The purchases list (newest first) has the dashboard's
filters."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import RedirectResponse, Response

from loyalwallet import db
from loyalwallet.analytics import service as analytics
from loyalwallet.api.deps import actor as any_actor
from loyalwallet.errors import not_found
from loyalwallet.imports import service as plastic
from loyalwallet.merchants import service as merchants
from loyalwallet.merchants.actors import Actor
from loyalwallet.programs.form_values import FieldError, format_money, parse_money
from loyalwallet.programs.service import list_programs
from loyalwallet.text import gettext_for, plural_forms
from loyalwallet.web.pages import form_data, redirect, render_staff, staff_language, staff_page
from loyalwallet.web.sessions import StaffSession, locations_for

router = APIRouter(include_in_schema=False)
confirm_above_of = merchants.confirm_sale_above
PAGE = 50  # purchases per page of the admin's list

# Strings the page's JavaScript shows, translated on the server.
JS_STRINGS = (
    "Searching…",
    "No guest with this phone. Issue a card?",
    "A new plastic card of the program:",
    "No card with this code.",
    "The guest has several cards; choose one:",
    "Press 1–9 or tap a card.",
    "points",
    "stamps",
    "Guest",
    "active",
    "blocked",
    "Next tier",
    "none",
    "Card found. Enter the check amount.",
    "The card is blocked.",
    "refunded",
    "Refund",
    "The guest already had this card.",
    "Card issued.",
    "The card is on its way.",
    "up to",
    "Recording the sale…",
    "Sale recorded.",
    "To pay",
    "Last sale",
    "Check",
    "Refund this sale",
    "Refund sale",
    "left to refund",
    "Enter the amount to refund.",
    "At most",
    "stamps taken back",
    "Write the reason (at least 3 characters).",
    "Stamp added.",
    "Stamp removed.",
    "Refunded",
    "points returned",
    "points taken back",
    "This browser cannot read codes from the camera. Use the scanner or type the code.",
    "Point the camera at the card's code.",
    "The camera is not available:",
    "Ask the guest for consent to the processing of personal data, then tick the box.",
    "The code was sent to the guest by SMS. Type the code the guest reads out.",
    "The code has six digits.",
    "Enter the amount as a number, for example 350 or 350,50.",
    "The amount must be more than zero.",
    "The amount cannot be negative.",
    "The amount is too large.",
    "A large sale: press Enter or Confirm once more to record",
    "By hand",
)
# Messages for the API's error codes, shown instead of the English detail.
ERROR_STRINGS = {
    "insufficient_points": "Not enough points on the card.",
    "redeem_limit_exceeded": "Points may pay only part of this check.",
    "card_blocked": "The card is blocked; ask a manager.",
    "fraud_limit": "Refused by an anti-fraud rule (for example: a cashier cannot serve their own card).",
    "coupon_invalid": "The reward cannot be used.",
    "coupon_invalid_item_price_needed": "This reward takes the free item's price from the check lines: "
    "add the item as a line (its price), or ask the owner to give the reward a value.",
    "coupon_invalid_no_item": "The check has no item this reward is for.",
    "refund_exceeds_purchase": "The refund is larger than what is left of the purchase.",
    "forbidden": "Not allowed for your role or location.",
    "rate_limited": "Too many requests; wait a moment.",
    "idempotency_conflict": "This sale was already recorded with other figures; start a new sale.",
    "unauthorized": "Your session has ended; log in again.",
    "otp_invalid": "Wrong code: ask the guest to read it again.",
    "consent_required": "The guest's consent is required.",
    "channel_unavailable": "The guest left no phone or e-mail for this.",
}


@router.get("/cashier")
def cashier(request: Request, who: StaffSession = Depends(staff_page("cashier"))) -> Response:
    with db.read() as session:
        staff = merchants.get_staff(session, who.merchant_id, who.staff_id)
        allowed = locations_for(session, staff)
        location = (
            merchants.get_location(session, who.merchant_id, who.location_id) if who.location_id else None
        )
        programs = list_programs(session, who.merchant_id)
        categories = analytics.categories(session, who.merchant_id)
        merchant = merchants.get_merchant(session, who.merchant_id)
    # A sale above this (minor units) asks the cashier to confirm it a second time.
    confirm_above = confirm_above_of(merchant)
    if location is None and who.role == "cashier" and len(allowed) > 1:
        return RedirectResponse("/account/location?next=/cashier", status_code=303)
    _ = gettext_for(staff_language(request, who))
    lang = staff_language(request, who)
    i18n: dict[str, Any] = {s: _(s) for s in JS_STRINGS}
    # Counted words in every form the language has: the script picks one with Intl.PluralRules.
    i18n["count:points"] = plural_forms(lang, "point", "points")
    i18n["count:stamps"] = plural_forms(lang, "stamp", "stamps")
    i18n.update({f"err_{code}": _(text) for code, text in ERROR_STRINGS.items()})
    return render_staff(
        request,
        who,
        "cashier/page.html",
        {
            "location": location,
            "can_switch": len(allowed) > 1,
            "programs": programs,
            "categories": sorted(categories),
            "i18n": i18n,
            "confirm_above": confirm_above,
            # Stamp corrections are for managers and owners (the API checks it too).
            "can_adjust": who.role in ("owner", "manager"),
        },
        section="cashier",
    )


@router.get("/cashier/plastic")
def plastic_lookup(code: str = Query(..., max_length=64), who: Actor = Depends(any_actor)) -> dict[str, Any]:
    """The program whose card code range holds this not yet issued plastic number."""
    with db.read() as session:
        program = plastic.program_for_plastic(session, who.merchant_id, code)
        if program is None:
            raise not_found("card code range")
        return {"program_id": program.id, "program_name": program.name}


# --- the owner's cashier settings -------------------------------------------------------


@router.get("/admin/settings/cashier")
def cashier_settings(request: Request, who: StaffSession = Depends(staff_page("owner"))) -> Response:
    with db.read() as session:
        merchant = merchants.get_merchant(session, who.merchant_id)
        threshold = confirm_above_of(merchant)
    return render_staff(
        request,
        who,
        "cashier/settings.html",
        {
            "threshold": format_money(threshold, "," if staff_language(request, who) == "ru" else "."),
            "default": merchants.CONFIRM_SALE_ABOVE,
            "error": None,
        },
        section="cashier_settings",
    )


@router.post("/admin/settings/cashier")
async def save_cashier_settings(
    request: Request, who: StaffSession = Depends(staff_page("owner"))
) -> Response:
    form = await form_data(request, who)
    typed = str(form.get("confirm_sale_above") or "").strip()[:40]
    error = None
    try:
        minor = parse_money(typed)
    except FieldError as exc:
        error, minor = str(exc), None
    if error is None and (minor is None or not 1 <= minor <= merchants.CONFIRM_SALE_ABOVE_MAX):
        error = "Enter an amount more than zero, at most 1 000 000 000."
    if error is not None:
        # The page again with what was typed and the reason at the field; nothing saved.
        return render_staff(
            request,
            who,
            "cashier/settings.html",
            {"threshold": typed, "default": merchants.CONFIRM_SALE_ABOVE, "error": error},
            section="cashier_settings",
            status=422,
        )
    assert minor is not None
    with db.transaction() as session:
        merchants.set_confirm_sale_above(session, who.actor, minor)
    return redirect("/admin/settings/cashier", "Saved.")


# --- the admin's purchases --------------------------------------------------------------


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
        rows = analytics.purchases(session, f, card, before, PAGE)
        locations = merchants.list_locations(session, who.merchant_id)
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
