"""Guest-facing HTTP of the Telegram card: "Open in Telegram" from the card's page (a
fresh one-time start link, then t.me), and the bot's webhook."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from loyalwallet import db
from loyalwallet.enrollment import webcard
from loyalwallet.errors import DomainError
from loyalwallet.fraud import linking
from loyalwallet.tgcard import bots, service

router = APIRouter(include_in_schema=False)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


@router.post("/c/{token}/telegram")
def open_in_telegram(token: str) -> Response:
    """The card page's button: a POST (a link preview or prefetch makes no token)."""
    with db.transaction() as session:
        card, _program, _merchant = webcard.load_card(session, token)
        url = service.start_link(session, card)
    response = RedirectResponse(url, status_code=303)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@router.post("/telegram/hook/{merchant_id}")
async def webhook(merchant_id: int, request: Request) -> Response:
    """Telegram's POST of one update; it must carry the secret token setWebhook was given."""
    with db.read() as session:
        token = bots.check_secret(session, merchant_id, request.headers.get(SECRET_HEADER))
    if token is None:
        raise DomainError("unauthorized", "wrong or missing secret token")
    try:
        update: Any = await request.json()
    except ValueError:
        raise DomainError("validation_error", "the body is not JSON") from None
    if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
        raise DomainError("validation_error", "not a Telegram update")
    linking.handle_update(token, update)
    return JSONResponse({"ok": True})
