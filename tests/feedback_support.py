"""Helpers of the feedback tests: switch feedback on, buy, find the invitation link."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select

from fakes.telegram import TOKEN
from loyalwallet import db
from loyalwallet.cards.models import Card
from loyalwallet.outbox import worker
from support import Shop


def enable(shop: Shop, **extra: Any) -> dict[str, Any]:
    r = shop.call("PUT", "/api/v1/feedback/settings", json={"enabled": True, **extra})
    assert r.status_code == 200, r.text
    return dict(r.json())


def telegram(shop: Shop, chat: str = "5550001") -> None:
    r = shop.call("PUT", "/api/v1/alerts/telegram", json={"chat_id": chat, "bot_token": TOKEN})
    assert r.status_code == 200, r.text


def card_row(code: str) -> Card:
    with db.read() as session:
        card = session.scalar(select(Card).where(Card.code == code))
        assert card is not None
        session.expunge(card)
        return card


def buy_and_invite(shop: Shop, code: str, amount: int = 50_000) -> tuple[str, int]:
    """A purchase on the card; the worker delivers purchase.created; returns the rate path
    found in the card's message, and the purchase id."""
    purchase = shop.buy(code, amount, location_id=shop.location_id)
    worker.drain()
    card = card_row(code)
    assert card.message, "the card got no message"
    match = re.search(r"(/c/[^/\s]+/rate/(\d+))", card.message)
    assert match, card.message
    assert int(match.group(2)) == purchase["id"]
    return match.group(1), int(purchase["id"])
