"""The guest's unsubscribe page: /u/{token}. GET asks to confirm (mail scanners follow
links: a GET changes nothing); POST — the page's button or a mail client's RFC 8058
one-click request — withdraws marketing consent."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from loyalwallet import db
from loyalwallet.errors import DomainError
from loyalwallet.merchants.models import Merchant
from loyalwallet.messaging import reports, unsubscribe
from loyalwallet.web.templating import language, render

router = APIRouter(include_in_schema=False)


def _page(
    request: Request, context: dict[str, object], status: int = 200, lang: str | None = None
) -> Response:
    response = render(request, "messaging/unsubscribe.html", context, status=status, lang=lang)
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@router.get("/u/{token}")
def unsubscribe_page(request: Request, token: str) -> Response:
    try:
        with db.read() as session:
            customer = unsubscribe.customer_for(session, token)
            merchant = session.get(Merchant, customer.merchant_id)
            done = not customer.marketing_consent
            lang = language(request, customer.locale)
    except DomainError:
        return _page(request, {"invalid": True}, status=404)
    return _page(request, {"merchant_name": merchant.name if merchant else "", "done": done}, lang=lang)


@router.post("/u/{token}")
async def unsubscribe_post(request: Request, token: str) -> Response:
    form = await request.form()
    how = "one-click" if form.get("List-Unsubscribe") == "One-Click" else "page"
    try:
        with db.transaction() as session:
            customer = unsubscribe.unsubscribe(session, token, how)
            merchant = session.get(Merchant, customer.merchant_id)
            lang = language(request, customer.locale)
    except DomainError:
        return _page(request, {"invalid": True}, status=404)
    return _page(request, {"merchant_name": merchant.name if merchant else "", "done": True}, lang=lang)


@router.post("/sms/callback/{secret}")
async def sms_callback(request: Request, secret: str) -> Response:
    """SMS.ru's delivery reports (messaging.reports): answered "100" as SMS.ru asks; a
    wrong secret is a 404 and changes nothing."""
    if len(secret) > 64 or not reports.check_secret(secret):
        return PlainTextResponse("not found", status_code=404)
    form = await request.form()
    entries = [str(v) for v in form.getlist("data[]")][:100]
    reports.on_callback(entries)
    return PlainTextResponse("100")
