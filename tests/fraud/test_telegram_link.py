"""Linking the owner's Telegram chat: a one-time code and t.me deep link; the chat that
sends `/start <code>` to the bot is bound (by the owner's check or the worker's poll)."""

from __future__ import annotations

import html
from collections.abc import Iterator

import pytest
from sqlalchemy import update

from fakes.telegram import TOKEN, FakeTelegram
from loyalwallet import db
from loyalwallet.fraud import linking
from loyalwallet.fraud.models import TelegramLink
from loyalwallet.outbox import worker
from staff_support import add_staff, login, page_csrf
from support import Shop, new_shop


@pytest.fixture
def tg(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTelegram]:
    fake = FakeTelegram().start()
    monkeypatch.setenv("LOYALWALLET_TELEGRAM_API_URL", fake.url)
    yield fake
    fake.stop()


def _own_bot(shop: Shop) -> None:
    r = shop.call("PUT", "/api/v1/alerts/telegram", json={"bot_token": TOKEN})
    assert r.status_code == 200, r.text


def _link(shop: Shop) -> dict:
    r = shop.post("/api/v1/alerts/telegram/link")
    assert r.status_code == 201, r.text
    return r.json()


def test_the_chat_that_presses_start_is_bound(shop: Shop, tg: FakeTelegram) -> None:
    _own_bot(shop)
    link = _link(shop)
    assert link["bot_username"] == "cafe_bot"
    assert link["url"] == f"https://t.me/cafe_bot?start={link['code']}"
    assert shop.get("/api/v1/alerts/telegram/link").json()["status"] == "pending"
    # Not yet pressed: still pending, nothing bound.
    assert shop.post("/api/v1/alerts/telegram/link/check").json()["status"] == "pending"

    tg.user_sends(4242, "hello")
    tg.user_sends(6666, "/start not-the-right-code-at-all")
    tg.user_sends(7770001, f"/start {link['code']}")
    r = shop.post("/api/v1/alerts/telegram/link/check")
    assert r.status_code == 200 and r.json()["status"] == "linked" and r.json()["chat_id"] == "7770001"
    assert shop.get("/api/v1/alerts/telegram").json()["chat_id"] == "7770001"
    assert tg.updates == []  # every update read was confirmed
    worker.drain()
    assert [m["chat_id"] for m in tg.sent] == ["7770001"]  # the confirmation
    assert "loyalwallet" in tg.sent[0]["text"]

    # The code works once: another chat sending it later changes nothing.
    tg.user_sends(8880002, f"/start {link['code']}")
    assert linking.poll(TOKEN) == 0
    assert shop.get("/api/v1/alerts/telegram").json()["chat_id"] == "7770001"
    actions = [a["action"] for a in shop.get("/api/v1/audit?target_type=merchant").json()["items"]]
    assert "telegram.link" in actions and "telegram.linked" in actions


def test_the_worker_binds_every_merchant_sharing_the_bot(client, tg: FakeTelegram) -> None:
    first, second = new_shop(client), new_shop(client)
    _own_bot(first)
    _own_bot(second)
    a, b = _link(first), _link(second)
    tg.user_sends(1001, f"/start {b['code']}")
    tg.user_sends(1002, f"/start {a['code']}")
    assert linking.poll_pending() >= 2
    assert first.get("/api/v1/alerts/telegram").json()["chat_id"] == "1002"
    assert second.get("/api/v1/alerts/telegram").json()["chat_id"] == "1001"


def test_a_new_link_replaces_the_old_and_codes_expire(shop: Shop, tg: FakeTelegram) -> None:
    _own_bot(shop)
    old = _link(shop)
    new = _link(shop)
    tg.user_sends(2001, f"/start {old['code']}")
    assert shop.post("/api/v1/alerts/telegram/link/check").json()["status"] == "pending"
    with db.transaction() as session:
        session.execute(
            update(TelegramLink)
            .where(TelegramLink.merchant_id == shop.merchant_id)
            .values(expires_at=db.utcnow())
        )
    tg.user_sends(2002, f"/start {new['code']}")
    assert shop.post("/api/v1/alerts/telegram/link/check").json()["status"] == "expired"
    assert shop.get("/api/v1/alerts/telegram").json()["chat_id"] is None


def test_errors_and_roles(shop: Shop, tg: FakeTelegram, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOYALWALLET_TELEGRAM_BOT_TOKEN", raising=False)
    r = shop.post("/api/v1/alerts/telegram/link")
    assert r.status_code == 409 and r.json()["code"] == "telegram_not_configured"
    r = shop.post("/api/v1/alerts/telegram/link/check")
    assert r.status_code == 409 and r.json()["code"] == "telegram_link_missing"
    # The installation's bot serves merchants without their own; a token Telegram refuses
    # (its 401) is a wrong setting, 422, not an outage (502).
    monkeypatch.setenv("LOYALWALLET_TELEGRAM_BOT_TOKEN", "999:" + "x" * 30)
    r = shop.post("/api/v1/alerts/telegram/link")
    assert r.status_code == 422 and r.json()["code"] == "telegram_token_invalid"
    monkeypatch.setenv("LOYALWALLET_TELEGRAM_BOT_TOKEN", TOKEN)
    assert shop.post("/api/v1/alerts/telegram/link").status_code == 201
    assert shop.post("/api/v1/alerts/telegram/link", role="manager").status_code == 403
    assert shop.post("/api/v1/alerts/telegram/link/check", role="manager").status_code == 403


def test_the_alerts_page_links_a_chat(app, shop: Shop, tg: FakeTelegram) -> None:
    _own_bot(shop)
    owner = login(app, add_staff(shop, "owner"))
    csrf = page_csrf(owner, "/admin/alerts")
    page = owner.post("/admin/alerts/telegram/link?lang=en", data={"csrf": csrf})
    assert page.status_code == 200 and "press Start" in page.text
    url = html.unescape(page.text.split('id="telegram-link-url">', 1)[1].split("<", 1)[0])
    assert url.startswith("https://t.me/cafe_bot?start=")
    page = owner.post("/admin/alerts/telegram/link?lang=ru", data={"csrf": csrf})
    assert "Ссылка одноразовая" in page.text
    code = html.unescape(page.text.split('id="telegram-link-url">', 1)[1].split("<", 1)[0]).split("=", 1)[1]
    tg.user_sends(3003, f"/start {code}")
    r = owner.post("/admin/alerts/telegram/check", data={"csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303
    page = owner.get("/admin/alerts?lang=en")
    assert "Telegram is linked" in page.text and "3003" in page.text
