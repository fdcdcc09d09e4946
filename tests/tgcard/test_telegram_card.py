"""The guests' Telegram card against the fake Bot API: the owner connects the bot, the
card page's "Open in Telegram" makes a one-time t.me start link, the guest confirms in
the bot and sees the card (QR photo, figures, buttons), history, notices of changes,
unbinding; the send channel and Telegram campaigns; a forged or reused start token, a
chat bound to two cards, a blocked bot, the webhook's secret token, script in names."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select, update

from fakes.telegram import FakeTelegram
from loyalwallet import db
from loyalwallet.outbox import worker
from loyalwallet.outbox.models import OutboxMessage
from loyalwallet.tgcard import bots
from loyalwallet.tgcard.models import TelegramChat
from support import Shop
from tgcard_support import GUEST, bind, chat_of, connect, public_token, read, start_link


def test_bind_see_the_card_history_notices_and_unbind(shop: Shop, app: Any, tg: FakeTelegram) -> None:
    connect(shop, app, tg)
    program = shop.program("bonus", name="Coffee <script>alert(1)</script>")
    card = shop.card(program)
    page = shop.client.get(f"/c/{public_token(card)}").text
    assert f'action="/c/{public_token(card)}/telegram"' in page and 'data-wallet="telegram"' in page

    token = start_link(shop, card)
    tg.user_sends(GUEST, f"/start {token}")
    read()
    ask = tg.sent[-1]
    assert "Coffee &lt;script&gt;" in ask["text"] and "<script>" not in ask["text"]
    assert chat_of(card["code"]) is None  # not before the guest confirms

    [[yes, _no]] = ask["reply_markup"]["inline_keyboard"]
    tg.user_presses(GUEST, yes["callback_data"])
    read()
    assert chat_of(card["code"]) is not None
    photo = tg.photos[-1]
    assert photo["chat_id"] == str(GUEST) and photo["png"].startswith(b"\x89PNG")
    assert card["code"] in photo["caption"] and "&lt;script&gt;" in photo["caption"]
    assert photo["parse_mode"] == "HTML"
    buttons = [b["callback_data"] for row in photo["reply_markup"]["inline_keyboard"] for b in row]
    assert buttons == ["history", "notify", "unbind"]
    assert tg.answered  # the button's press was answered

    # A purchase: the chat hears the new balance.
    shop.buy(card["code"], 50000)
    worker.drain()
    balance = shop.get(f"/api/v1/cards/{card['code']}").json()["balance"]
    assert str(balance) in tg.sent[-1]["text"] and tg.sent[-1]["chat_id"] == str(GUEST)

    tg.user_presses(GUEST, "history")
    read()
    assert f"+{balance}" in tg.sent[-1]["text"]

    # Notifications off: a purchase says nothing; the guest's choice.
    tg.user_presses(GUEST, "notify")
    read()
    quiet = len(tg.sent)
    shop.buy(card["code"], 10000)
    worker.drain()
    assert len(tg.sent) == quiet

    tg.user_sends(GUEST, "/unbind")
    read()
    assert chat_of(card["code"]) is None
    tg.user_sends(GUEST, "/card")
    read()
    assert "Open in Telegram" in tg.sent[-1]["text"] or "Telegram" in tg.sent[-1]["text"]


def test_forged_and_reused_start_tokens_bind_nothing(shop: Shop, app: Any, tg: FakeTelegram) -> None:
    card = shop.card(shop.program("stamp"))
    # No bot yet: the card page offers no Telegram, and its link makes no start token.
    assert 'data-wallet="telegram"' not in shop.client.get(f"/c/{public_token(card)}").text
    assert shop.client.post(f"/c/{public_token(card)}/telegram", follow_redirects=False).status_code == 404
    assert shop.client.post("/c/not-a-card-token/telegram", follow_redirects=False).status_code == 404
    connect(shop, app, tg)
    # A group chat is told to use a private one; nothing is bound from it.
    tg.updates.append(
        {
            "update_id": 1,
            "message": {
                "message_id": 1,
                "date": 0,
                "chat": {"id": -100777, "type": "group"},
                "from": {"id": GUEST, "is_bot": False, "first_name": "G"},
                "text": f"/start {start_link(shop, card)}",
            },
        }
    )
    tg.chats.add("-100777")
    read()
    assert tg.sent[-1]["chat_id"] == "-100777" and "личном чате" in tg.sent[-1]["text"]
    tg.user_sends(GUEST, "/start forgedforgedforgedforged")
    tg.user_sends(GUEST + 1, "/start <script>")
    read()
    assert chat_of(card["code"]) is None
    assert len([m for m in tg.sent if "does not work" in m["text"] or "не работает" in m["text"]]) == 2

    token = start_link(shop, card)
    tg.user_sends(GUEST, f"/start {token}")
    read()
    [[yes, _no]] = tg.sent[-1]["reply_markup"]["inline_keyboard"]
    # Another chat that got hold of the token (or the button's data) cannot take the card.
    tg.user_sends(GUEST + 2, f"/start {token}")
    tg.user_presses(GUEST + 2, yes["callback_data"])
    read()
    assert chat_of(card["code"]) is None
    tg.user_presses(GUEST, yes["callback_data"])
    read()
    bound = chat_of(card["code"])
    assert bound is not None
    # Used: pressing again or sending the token again changes nothing.
    before = len(tg.sent)
    tg.user_presses(GUEST, yes["callback_data"])
    tg.user_sends(GUEST + 3, f"/start {token}")
    read()
    assert len(tg.sent) == before + 2
    assert chat_of(card["code"]).chat_hash == bound.chat_hash  # type: ignore[union-attr]


def test_a_chat_shows_one_card_of_a_merchant(shop: Shop, app: Any, tg: FakeTelegram) -> None:
    """Binding a second card of the same merchant in a chat replaces the first, after the
    bot said so; the card bound in a new chat leaves the old one."""
    connect(shop, app, tg)
    first, second = shop.card(shop.program("bonus")), shop.card(shop.program("stamp"))
    bind(tg, shop, first)
    assert chat_of(first["code"]) is not None

    token = start_link(shop, second)
    tg.user_sends(GUEST, f"/start {token}")
    read()
    ask = tg.sent[-1]
    assert f"••••{first['code'][-4:]}" in ask["text"]  # the card it replaces is named
    [[yes, _no]] = ask["reply_markup"]["inline_keyboard"]
    tg.user_presses(GUEST, yes["callback_data"])
    read()
    assert chat_of(first["code"]) is None and chat_of(second["code"]) is not None
    assert second["code"] in tg.photos[-1]["caption"]

    # The second card opened on a new phone: it moves there.
    bind(tg, shop, second, chat=GUEST + 5)
    with db.read() as session:
        rows = session.scalars(select(TelegramChat).where(TelegramChat.merchant_id == shop.merchant_id)).all()
    assert len(rows) == 1 and tg.photos[-1]["chat_id"] == str(GUEST + 5)


def test_a_blocked_bot_unbinds_and_the_send_channel(shop: Shop, app: Any, tg: FakeTelegram) -> None:
    connect(shop, app, tg)
    card = shop.card(shop.program("bonus"))
    r = shop.post(f"/api/v1/cards/{card['code']}/send", {"channel": "telegram"}, role="cashier")
    assert r.status_code == 409 and r.json()["code"] == "channel_unavailable"
    bind(tg, shop, card)
    photos = len(tg.photos)
    r = shop.post(f"/api/v1/cards/{card['code']}/send", {"channel": "telegram"}, role="cashier")
    assert r.status_code == 202, r.text
    worker.drain()
    assert len(tg.photos) == photos + 1 and card["code"] in tg.photos[-1]["caption"]

    # 429: retried after Telegram's retry_after, not lost.
    tg.throttle_next = 1
    shop.buy(card["code"], 30000)
    worker.drain()
    with db.read() as session:
        [row] = session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.merchant_id == shop.merchant_id,
                OutboxMessage.topic == "tgcard.send",
                OutboxMessage.status == "pending",
            )
        ).all()
    assert "429" in (row.last_error or "") and row.next_attempt_at >= db.utcnow() + dt.timedelta(seconds=5)
    with db.transaction() as session:
        session.execute(
            update(OutboxMessage).where(OutboxMessage.id == row.id).values(next_attempt_at=db.utcnow())
        )
    sent = len(tg.sent)
    worker.drain()
    assert len(tg.sent) == sent + 1

    # The guest blocked the bot: the next notice's 403 unbinds the chat.
    tg.blocked.add(str(GUEST))
    shop.buy(card["code"], 30000)
    worker.drain()
    assert chat_of(card["code"]) is None
    actions = [a["action"] for a in shop.get("/api/v1/audit?target_type=card").json()["items"]]
    assert "tgcard.unbound" in actions


def test_telegram_campaign_reaches_bound_chats_only(shop: Shop, app: Any, tg: FakeTelegram) -> None:
    connect(shop, app, tg)
    program = shop.program("bonus")
    bound = shop.card(program, marketing_consent=True)
    lone = shop.card(program, marketing_consent=True)
    bind(tg, shop, bound)
    r = shop.post(
        "/api/v1/campaigns",
        {
            "name": "News",
            "header": "Pumpkin <latte>",
            "body": "Come & taste",
            "channel": "telegram",
            "send_now": True,
        },
    )
    assert r.status_code == 201, r.text
    worker.drain()
    [news] = [m for m in tg.sent if "Pumpkin" in m["text"]]
    assert (
        news["chat_id"] == str(GUEST) and "Pumpkin &lt;latte&gt;" in news["text"] and "&amp;" in news["text"]
    )
    stats = shop.get(f"/api/v1/campaigns/{r.json()['id']}").json()["stats"]
    assert (stats["sent"], stats["skipped"]) == (1, 1), stats
    assert lone["code"]


def test_webhook_checks_the_secret_token(
    shop: Shop, app: Any, tg: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bots, "base_url", lambda: "https://cafe.example")
    connect(shop, app, tg)
    assert tg.webhook is not None
    assert tg.webhook["url"] == f"https://cafe.example/telegram/hook/{shop.merchant_id}"
    secret = tg.webhook["secret_token"]
    card = shop.card(shop.program("bonus"))
    token = start_link(shop, card)
    update = {
        "update_id": 1,
        "message": {
            "message_id": 1,
            "date": 0,
            "chat": {"id": GUEST, "type": "private"},
            "from": {"id": GUEST, "is_bot": False, "first_name": "G"},
            "text": f"/start {token}",
        },
    }
    hook = f"/telegram/hook/{shop.merchant_id}"
    tg.chats.add(str(GUEST))  # the guest has started the bot: Telegram lets it write to them
    for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"}):
        r = shop.client.post(hook, json=update, headers=headers)
        assert r.status_code == 401 and r.json()["code"] == "unauthorized"
    worker.drain()
    assert tg.sent == []
    r = shop.client.post(hook, content=b"not json", headers={"X-Telegram-Bot-Api-Secret-Token": secret})
    assert r.status_code == 422
    r = shop.client.post(hook, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": secret})
    assert r.status_code == 200
    worker.drain()
    assert tg.sent[-1]["chat_id"] == str(GUEST) and tg.sent[-1]["reply_markup"]
    # Polling is off for a webhook bot: Telegram would refuse getUpdates anyway.
    assert bots.poll() == 0


def test_erasing_the_guest_unbinds_the_chat(shop: Shop, app: Any, tg: FakeTelegram) -> None:
    _phone = "+79161234" + str(GUEST)[-3:]
    card = shop.card(shop.program("bonus"), phone=_phone)
    connect(shop, app, tg)
    bind(tg, shop, card)
    assert chat_of(card["code"]) is not None
    r = shop.post("/api/v1/customers/erase", {"phone": _phone, "reason": "asked"})
    assert r.status_code == 200, r.text
    assert chat_of(card["code"]) is None


def test_a_wallet_campaign_message_reaches_the_bound_chat(shop: Shop, app: Any, tg: FakeTelegram) -> None:
    """A campaign or trigger message put on the card (Card.message) comes to the chat of a
    guest who keeps notifications on, once."""
    connect(shop, app, tg)
    card = shop.card(shop.program("stamp"), marketing_consent=True)
    bind(tg, shop, card)
    r = shop.post(
        "/api/v1/campaigns",
        {"name": "Wallet", "header": "Friday", "body": "Two <stamps> for one coffee", "send_now": True},
    )
    assert r.status_code == 201, r.text
    worker.drain()
    [notice] = [m for m in tg.sent if "stamps&gt;" in m["text"]]
    assert notice["chat_id"] == str(GUEST) and "<stamps>" not in notice["text"]
    worker.drain()
    assert len([m for m in tg.sent if "stamps&gt;" in m["text"]]) == 1
