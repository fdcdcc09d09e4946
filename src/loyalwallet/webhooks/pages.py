"""Admin page of webhooks: endpoints, their health, adding one (its secret shown once)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select
from starlette.responses import Response

from loyalwallet import db
from loyalwallet.errors import DomainError
from loyalwallet.web.pages import form_data, redirect, render_staff, staff_page
from loyalwallet.web.sessions import StaffSession
from loyalwallet.webhooks import service
from loyalwallet.webhooks.models import WebhookEndpoint

router = APIRouter(include_in_schema=False)
manager = staff_page("manager")


def _page(request: Request, who: StaffSession, secret: str | None = None) -> Response:
    with db.read() as session:
        rows = session.scalars(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.merchant_id == who.merchant_id)
            .order_by(WebhookEndpoint.id)
        )
        endpoints = [service.view(e) for e in rows]
    ctx = {"endpoints": endpoints, "events": service.EVENT_NAMES, "secret": secret}
    return render_staff(request, who, "webhooks/list.html", ctx, section="webhooks")


@router.get("/admin/webhooks")
def webhooks_page(request: Request, who: StaffSession = Depends(manager)) -> Response:
    return _page(request, who)


@router.post("/admin/webhooks")
async def webhooks_post(request: Request, who: StaffSession = Depends(manager)) -> Response:
    form = await form_data(request, who)
    events = [e for e in form.getlist("events") if isinstance(e, str)]
    with db.transaction() as session:
        _endpoint, secret = service.create(
            session, who.actor, str(form.get("url") or ""), events, str(form.get("description") or "")
        )
    # The secret is shown on this answer only (not kept in a cookie or a redirect).
    return _page(request, who, secret)


@router.post("/admin/webhooks/{endpoint_id}/{action}")
async def webhook_action(
    endpoint_id: int, action: str, request: Request, who: StaffSession = Depends(manager)
) -> Response:
    await form_data(request, who)
    secret = None
    with db.transaction() as session:
        if action == "test":
            service.send_test(session, who.actor, endpoint_id)
        elif action in ("enable", "disable"):
            service.change(session, who.actor, endpoint_id, {"active": action == "enable"})
        elif action == "delete":
            service.remove(session, who.actor, endpoint_id)
        elif action == "rotate":
            secret = service.rotate_secret(session, who.actor, endpoint_id)
        else:
            raise DomainError("not_found", "no such action")
    if secret is not None:
        return _page(request, who, secret)
    return redirect("/admin/webhooks", "Saved.")
