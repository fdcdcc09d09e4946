"""Admin page of the guests' Telegram card (owner): connect the bot, see how many chats
are bound, disconnect."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from loyalwallet import db
from loyalwallet.errors import DomainError, translated
from loyalwallet.text import gettext_for
from loyalwallet.tgcard import bots
from loyalwallet.web.pages import form_data, redirect, render_staff, staff_language, staff_page
from loyalwallet.web.sessions import StaffSession

router = APIRouter(include_in_schema=False)
PAGE = "/admin/telegram-card"


@router.get(PAGE)
def bot_page(request: Request, who: StaffSession = Depends(staff_page("owner"))) -> Response:
    with db.read() as session:
        state = bots.view(session, who.merchant_id)
    return render_staff(request, who, "tgcard/bot.html", {"bot": state}, section="telegram_card")


@router.post(PAGE)
async def bot_post(request: Request, who: StaffSession = Depends(staff_page("owner"))) -> Response:
    form = await form_data(request, who)
    try:
        if form.get("action") == "disconnect":
            bots.disconnect(who.actor)
            return redirect(PAGE, "The bot is disconnected.")
        bots.connect(who.actor, str(form.get("token") or ""))
    except DomainError as exc:
        return redirect(PAGE, translated(exc, gettext_for(staff_language(request, who))), "error")
    return redirect(PAGE, "The bot is connected: the card pages offer Open in Telegram.")
