"""The cashier's gift-certificate page (its own small page beside the cashier screen):
sell a certificate (amount, recipient, message, validity) and get its code, web card
and printable PDF; look a certificate up by its code to tell the guest the balance.
Spending one is part of a sale on the cashier screen or `POST /api/v1/purchases`."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from loyalwallet import db
from loyalwallet.certificates import ledger, service
from loyalwallet.certificates.schemas import CertificateIn
from loyalwallet.errors import DomainError, translated
from loyalwallet.text import gettext_for
from loyalwallet.web.pages import form_data, render_staff, staff_language, staff_page
from loyalwallet.web.sessions import StaffSession

router = APIRouter(include_in_schema=False)

_AMOUNT = re.compile(r"^\s*(\d{1,9})(?:[.,](\d{1,2}))?\s*$")


def parse_amount(text: str) -> int:
    """ "3000", "3 000", "2999,50" (currency units as a cashier types them) -> minor units."""
    m = _AMOUNT.match(text.replace(" ", "").replace("\u00a0", ""))
    if not m or int(m.group(1) + (m.group(2) or "").ljust(2, "0")) == 0:
        raise DomainError("validation_error", "the amount is a positive number, e.g. 3000", field="amount")
    return int(m.group(1)) * 100 + int((m.group(2) or "0").ljust(2, "0"))


def _field(form: Any, name: str) -> str | None:
    value = form.get(name)
    return value.strip() or None if isinstance(value, str) else None


@router.get("/cashier/certificates")
def certificates_page(
    request: Request,
    code: str | None = Query(None, max_length=64),
    who: StaffSession = Depends(staff_page("cashier")),
) -> Response:
    ctx: dict[str, Any] = {"found": None, "error": None, "sold": None, "code": code or ""}
    if code:
        try:
            with db.read() as session:
                ctx["found"] = service.view(
                    ledger.find(session, who.merchant_id, code, lock=False), with_contacts=False
                )
        except DomainError as exc:
            ctx["error"] = translated(exc, gettext_for(staff_language(request, who)))
    return render_staff(request, who, "certificates/cashier.html", ctx, section="certificates")


@router.post("/cashier/certificates")
async def sell_certificate(request: Request, who: StaffSession = Depends(staff_page("cashier"))) -> Response:
    form = await form_data(request, who)
    ctx: dict[str, Any] = {"found": None, "error": None, "sold": None, "code": ""}
    try:
        valid = _field(form, "valid_days")
        body = CertificateIn(
            amount=parse_amount(_field(form, "amount") or ""),
            recipient_contact=_field(form, "recipient_contact"),
            recipient_name=_field(form, "recipient_name"),
            buyer_contact=_field(form, "buyer_contact"),
            message=_field(form, "message"),
            valid_days=int(valid) if valid and valid.isdigit() else None,
            send_to_recipient=form.get("send") == "on",
        )
        with db.transaction() as session:
            _status, ctx["sold"], _replayed = service.sell(session, who.actor, body)
    except DomainError as exc:
        ctx["error"] = translated(exc, gettext_for(staff_language(request, who)))
    except ValueError as exc:  # pydantic: a contact too short, a message too long
        ctx["error"] = str(exc).splitlines()[0] if str(exc) else "invalid input"
    status = 201 if ctx["sold"] else 422
    return render_staff(request, who, "certificates/cashier.html", ctx, section="certificates", status=status)
