"""{base}/c/{token}/google: the card's "Add to Google Wallet" link that always works
(and {base}/g/{token}/google: a gift certificate's).

It sends the guest on to the signed save link (making and caching it on first use),
or explains why it cannot: the card is unknown, Google Wallet is not set up, the
object is still on its way to Google, or the server only has a development key.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalwallet import db
from loyalwallet.cards.models import Card
from loyalwallet.cards.views import card_urls
from loyalwallet.certificates.models import GiftCertificate
from loyalwallet.programs.models import Program
from loyalwallet.wallet.google import gifts
from loyalwallet.wallet.google.issuer import issuer_for
from loyalwallet.wallet.google.links import save_link
from loyalwallet.wallet.google.models import GoogleObject
from loyalwallet.web.templating import render

router = APIRouter(tags=["google wallet"])
# Refreshes of the waiting page before the link is tried anyway (the object may be
# slow to reach Google; the full save link works without it when the class exists).
MAX_WAIT_ROUNDS = 3


def _card(session: Session, token: str) -> tuple[Card, Program] | None:
    row = session.execute(
        select(Card, Program).join(Program, Program.id == Card.program_id).where(Card.public_token == token)
    ).first()
    return (row[0], row[1]) if row else None


@router.get("/g/{token}/google", include_in_schema=False)
def add_gift_to_google_wallet(request: Request, token: str) -> Response:
    """A gift certificate's save link: the JWT carries the whole object (gifts.py)."""
    if len(token) > 64:
        return render(request, "google/notice.html", {"state": "missing"}, status=404)
    with db.read() as session:
        cert = session.scalar(select(GiftCertificate).where(GiftCertificate.public_token == token))
        if cert is None or cert.status != "active":
            return render(request, "google/notice.html", {"state": "missing"}, status=404)
        issuer = issuer_for(session, cert.merchant_id)
        web_url = f"/g/{token}"
        if issuer is None:
            return render(
                request,
                "google/notice.html",
                {"state": "not_configured", "web_card_url": web_url},
                status=503,
            )
        link = gifts.save_link(session, cert, issuer)
    if issuer.development and not issuer.syncs:
        return render(
            request, "google/notice.html", {"state": "development", "save_url": link, "web_card_url": web_url}
        )
    return RedirectResponse(link, status_code=303)


@router.get("/c/{token}/google", include_in_schema=False)
def add_to_google_wallet(request: Request, token: str, attempt: int = Query(0, ge=0, le=100)) -> Response:
    if len(token) > 64:
        return render(request, "google/notice.html", {"state": "missing"}, status=404)
    with db.read() as session:
        found = _card(session, token)
        if found is None:
            return render(request, "google/notice.html", {"state": "missing"}, status=404)
        card, program = found
        web_card_url = card_urls(card)["web_card_url"]
        issuer = issuer_for(session, card.merchant_id)
        if issuer is None:
            context = {"state": "not_configured", "web_card_url": web_card_url}
            return render(request, "google/notice.html", context, status=503)
        link = save_link(session, card, program, issuer, create=False)
    if link is None:
        with db.transaction() as session:
            found = _card(session, token)
            assert found is not None
            link = save_link(session, found[0], found[1], issuer, create=True)
    with db.read() as session:
        inserted = session.scalar(select(GoogleObject.inserted).where(GoogleObject.card_id == card.id))
    waiting = issuer.syncs and not inserted and attempt < MAX_WAIT_ROUNDS
    if link is None or waiting:
        retry_url = f"{request.url.path}?attempt={attempt + 1}"
        return render(request, "google/notice.html", {"state": "pending", "retry_url": retry_url}, status=202)
    if issuer.development and not issuer.syncs:
        context = {"state": "development", "save_url": link, "web_card_url": web_card_url}
        return render(request, "google/notice.html", context)
    return RedirectResponse(link, status_code=303)
