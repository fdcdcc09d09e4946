"""Admin page actions: send a guest's card from their page; estimate an SMS campaign's cost."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from loyalwallet import db
from loyalwallet.customers import directory
from loyalwallet.errors import DomainError, translated
from loyalwallet.messaging import campaign_sms, service
from loyalwallet.text import gettext_for
from loyalwallet.web.pages import form_data, redirect, staff_language, staff_page
from loyalwallet.web.sessions import StaffSession

router = APIRouter(include_in_schema=False)


@router.post("/admin/guests/{customer_id}/send-card")
async def send_card(
    customer_id: int, request: Request, who: StaffSession = Depends(staff_page("manager"))
) -> Response:
    form = await form_data(request, who)
    back = f"/admin/guests/{customer_id}"
    with db.read() as session:
        directory.get_guest(session, who.merchant_id, customer_id)  # not_found for another's guest
    code = str(form.get("card") or "")
    try:
        with db.transaction() as session:
            service.send_card(session, who.actor, code, str(form.get("channel") or ""))
    except DomainError as exc:
        return redirect(back, translated(exc, gettext_for(staff_language(request, who))), "error")
    return redirect(back, "The card is on its way.")


@router.post("/admin/campaigns/{campaign_id}/sms-estimate")
async def sms_estimate(
    campaign_id: int, request: Request, who: StaffSession = Depends(staff_page("manager"))
) -> Response:
    await form_data(request, who)
    back = f"/admin/campaigns/{campaign_id}"
    try:
        campaign_sms.estimate(who.actor, campaign_id)
    except DomainError as exc:
        if exc.code == "not_found":
            raise
        return redirect(back, translated(exc, gettext_for(staff_language(request, who))), "error")
    return redirect(back, "The cost is estimated.")
