"""The owner's SMS page (/admin/sms): which provider sends the guests' codes (console or
SMS.ru, with its key and sender name), and "send me a test SMS" with the provider's own
answer. What is typed stays in the form when something is wrong."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from loyalwallet import db
from loyalwallet.config import get_settings
from loyalwallet.customers.phones import to_e164
from loyalwallet.enrollment import sms
from loyalwallet.enrollment.sms import settings as sms_settings
from loyalwallet.errors import DomainError, translated
from loyalwallet.text import gettext_for
from loyalwallet.web.pages import form_data, merchant_of, redirect, render_staff, staff_language, staff_page
from loyalwallet.web.sessions import StaffSession

router = APIRouter(include_in_schema=False)
owner = staff_page("owner")


def _page(
    request: Request,
    who: StaffSession,
    *,
    error: str | None = None,
    values: dict[str, str] | None = None,
    test: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    merchant = merchant_of(who)
    ctx = {
        "sms": sms_settings.view(merchant),
        "error": error,
        "values": values or {},
        "test": test,
    }
    return render_staff(
        request, who, "enrollment/sms.html", ctx, section="sms", status=status, merchant=merchant
    )


@router.get("/admin/sms")
def sms_page(request: Request, who: StaffSession = Depends(owner)) -> Response:
    return _page(request, who)


@router.post("/admin/sms")
async def sms_save(request: Request, who: StaffSession = Depends(owner)) -> Response:
    form = await form_data(request, who)
    values = {
        "provider": str(form.get("provider") or ""),
        "api_id": str(form.get("api_id") or "").strip(),
        "sender": str(form.get("sender") or "").strip(),
    }
    try:
        with db.transaction() as session:
            sms_settings.set_sms(session, who.actor, values["provider"], values["api_id"], values["sender"])
    except DomainError as exc:
        _ = gettext_for(staff_language(request, who))
        return _page(request, who, error=translated(exc, _), values=values, status=exc.status)
    return redirect("/admin/sms", "SMS settings saved.")


@router.post("/admin/sms/test")
async def sms_test(request: Request, who: StaffSession = Depends(owner)) -> Response:
    form = await form_data(request, who)
    values = {"phone": str(form.get("phone") or "").strip()}
    _ = gettext_for(staff_language(request, who))
    try:
        phone = to_e164(values["phone"], get_settings().default_region)
    except DomainError:
        return _page(
            request,
            who,
            error=_("Enter your phone number, e.g. +7 916 123-45-67."),
            values=values,
            status=422,
        )
    merchant = merchant_of(who)
    text = gettext_for(merchant.locale or "ru")(
        "{name}: a test SMS. Guests will get their codes like this one."
    ).format(name=merchant.name)
    result = sms.send_test(merchant, phone, text)
    return _page(request, who, values=values, test={**result, "text": text, "phone": phone})
