"""A guest bot whose token Telegram later rejects (revoked or regenerated in @BotFather:
401 Unauthorized from getUpdates): polling it stops, the admin page says so in plain
words, the owner's alert chat hears it once, the card pages stop offering Telegram; a
new token mends it."""

from __future__ import annotations

import secrets
from typing import Any

from fakes.telegram import FakeTelegram
from loyalwallet.outbox import worker
from staff_support import page_csrf
from support import Shop
from tgcard_support import connect, public_token, read


def test_a_revoked_token_stops_the_bot_and_tells_the_owner_once(
    shop: Shop, app: Any, tg: FakeTelegram
) -> None:
    owner = connect(shop, app, tg)
    guest_token = tg.token
    program = shop.program("bonus")
    card = shop.card(program)
    assert 'data-wallet="telegram"' in shop.client.get(f"/c/{public_token(card)}").text
    read()
    assert tg.calls("getUpdates", guest_token) >= 1

    # The owner's fraud alerts come from another bot; from now on Telegram answers the
    # guest bot's token with 401 Unauthorized.
    tg.token = f"{secrets.randbelow(10**9) + 10**9}:AB{secrets.token_urlsafe(26)}"
    r = shop.call("PUT", "/api/v1/alerts/telegram", json={"chat_id": "5550001", "bot_token": tg.token})
    assert r.status_code == 200, r.text
    worker.drain()
    before = len(tg.sent)

    read()
    read()
    alerts = [m for m in tg.sent[before:] if "@cafe_bot" in m["text"]]
    assert len(alerts) == 1 and alerts[0]["chat_id"] == "5550001"
    assert "/admin/telegram-card" in alerts[0]["text"]
    polled = tg.calls("getUpdates", guest_token)
    read()
    assert tg.calls("getUpdates", guest_token) == polled  # no longer polled

    page = owner.get("/admin/telegram-card").text
    assert "data-bot-broken" in page and "@BotFather" in page
    assert 'data-wallet="telegram"' not in shop.client.get(f"/c/{public_token(card)}").text

    # A new token mends it: polled again, the warning gone.
    csrf = page_csrf(owner, "/admin/telegram-card")
    r = owner.post("/admin/telegram-card", data={"csrf": csrf, "token": tg.token}, follow_redirects=False)
    assert r.status_code == 303
    assert "data-bot-broken" not in owner.get("/admin/telegram-card").text
    read()
    assert tg.calls("getUpdates", tg.token) >= 1


def test_the_russian_page_says_it_in_russian(shop: Shop, app: Any, tg: FakeTelegram) -> None:
    from loyalwallet.tgcard import bots

    owner = connect(shop, app, tg)
    assert bots.mark_broken(shop.merchant_id, "telegram 401: Unauthorized")
    assert not bots.mark_broken(shop.merchant_id, "telegram 401: Unauthorized")  # once
    page = owner.get("/admin/telegram-card", headers={"Accept-Language": "ru"}).text
    assert "data-bot-broken" in page and "Telegram больше не принимает токен" in page
