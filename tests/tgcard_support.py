"""Helpers of the Telegram card tests: connect the bot as the owner, get a card's start
link as the guest's page does, let the worker read the bot's updates, bind a chat."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select

from fakes.telegram import FakeTelegram
from loyalwallet import db
from loyalwallet.cards.models import Card
from loyalwallet.outbox import worker
from loyalwallet.tgcard import bots
from loyalwallet.tgcard.models import TelegramChat
from staff_support import add_staff, login, page_csrf
from support import Shop

GUEST = 91000001


def connect(shop: Shop, app: Any, tg: FakeTelegram) -> Any:
    owner = login(app, add_staff(shop, "owner"))
    csrf = page_csrf(owner, "/admin/telegram-card")
    r = owner.post("/admin/telegram-card", data={"csrf": csrf, "token": tg.token}, follow_redirects=False)
    assert r.status_code == 303
    page = owner.get("/admin/telegram-card").text
    assert "@cafe_bot" in page and "data-bot-connected" in page, page
    return owner


def public_token(card: dict[str, Any]) -> str:
    return str(card["web_card_url"]).rstrip("/").split("/c/")[1]


def start_link(shop: Shop, card: dict[str, Any]) -> str:
    r = shop.client.post(f"/c/{public_token(card)}/telegram", follow_redirects=False)
    assert r.status_code == 303, r.text
    match = re.fullmatch(r"https://t\.me/cafe_bot\?start=([A-Za-z0-9_-]{16,64})", r.headers["location"])
    assert match, r.headers["location"]
    return match.group(1)


def read() -> None:
    """The worker's turn: read the bots' updates, then deliver what they queued."""
    bots.poll()
    worker.drain()


def bind(tg: FakeTelegram, shop: Shop, card: dict[str, Any], chat: int = GUEST) -> None:
    token = start_link(shop, card)
    tg.user_sends(chat, f"/start {token}")
    read()
    ask = tg.sent[-1]
    assert ask["chat_id"] == str(chat)
    [[yes, _no]] = ask["reply_markup"]["inline_keyboard"]
    tg.user_presses(chat, yes["callback_data"])
    read()


def chat_of(code: str) -> TelegramChat | None:
    with db.read() as session:
        card_id = session.scalar(select(Card.id).where(Card.code == code))
        return session.scalar(select(TelegramChat).where(TelegramChat.card_id == card_id))
