"""Telegram alerts on the admin page: the test button says what it sends, "sent" only when
the Bot API said ok (a local fake), Telegram's errors in words the owner can act on, and
what was typed stays in the form."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from fakes.telegram import TOKEN, FakeTelegram
from staff_support import add_staff, login, page_csrf
from support import Shop


@pytest.fixture
def tg(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTelegram]:
    fake = FakeTelegram().start()
    monkeypatch.setenv("LOYALWALLET_TELEGRAM_API_URL", fake.url)
    monkeypatch.delenv("LOYALWALLET_TELEGRAM_BOT_TOKEN", raising=False)
    yield fake
    fake.stop()


def _fill(page: Any, chat: str, token: str) -> None:
    page.fill("#tg-chat", chat)
    page.fill("#tg-token", token)
    page.click("#telegram-test")
    page.wait_for_selector("#telegram-title")


@pytest.mark.browser
def test_the_test_message_reports_what_the_bot_api_said(
    page: Any, live_server: Any, shop: Shop, tg: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = add_staff(shop, "owner")
    page.goto(f"{live_server.url}/login?next=/admin/alerts")
    page.fill("#login", owner.login)
    page.fill("#password", owner.password)
    page.click("button[type=submit]")
    page.wait_for_url("**/admin/alerts")
    assert "Test café" in page.locator("#telegram-test-text").inner_text()  # what the test sends

    # Not a token at all: explained, nothing typed is lost.
    page.fill("#tg-hour", "21")
    _fill(page, "4242", "nope")
    assert "not a bot token from @BotFather" in page.locator("#telegram-error").inner_text()
    assert page.input_value("#tg-chat") == "4242" and page.input_value("#tg-token") == "nope"
    assert page.input_value("#tg-hour") == "21"

    # A token Telegram does not know (its 401).
    _fill(page, "4242", "999:" + "x" * 30)
    error = page.locator("#telegram-error").inner_text()
    assert "Telegram does not accept this bot token" in error and error.startswith("Saved, but")
    assert page.input_value("#tg-token") == "999:" + "x" * 30

    # The right bot, a chat it does not know (400 chat not found).
    _fill(page, "4242", TOKEN)
    assert "Telegram does not know this chat" in page.locator("#telegram-error").inner_text()
    assert page.input_value("#tg-chat") == "4242"
    assert tg.sent == []

    # Telegram out of reach: no raw "ConnectError" on the page.
    monkeypatch.setenv("LOYALWALLET_TELEGRAM_API_URL", "http://127.0.0.1:9")
    _fill(page, "5550001", "")
    error = page.locator("#telegram-error").inner_text()
    assert "Telegram cannot be reached" in error and "ConnectError" not in page.content()
    page.click("#telegram-link button")  # "Get a link" asks getMe: the same words
    page.wait_for_selector("#telegram-error")
    assert "Telegram cannot be reached" in page.locator("#telegram-error").inner_text()
    assert "getMe" not in page.content()
    monkeypatch.setenv("LOYALWALLET_TELEGRAM_API_URL", tg.url)

    # Sent: only with the Bot API's ok, and the message id it gave.
    _fill(page, "5550001", "")
    assert page.locator("#telegram-error").count() == 0
    sent = page.locator("#telegram-sent").inner_text()
    assert "Sent" in sent and "5550001" in sent
    assert len(tg.sent) == 1 and tg.sent[0]["chat_id"] == "5550001" and "Test café" in tg.sent[0]["text"]


def test_errors_in_the_owners_language(app: Any, shop: Shop, tg: FakeTelegram) -> None:
    owner = login(app, add_staff(shop, "owner"))
    csrf = page_csrf(owner, "/admin/alerts")
    r = owner.post(
        "/admin/alerts/telegram?lang=ru",
        data={"csrf": csrf, "chat_id": "4242", "bot_token": TOKEN, "digest_hour": "9", "action": "test"},
    )
    assert r.status_code == 422
    assert "Telegram не знает этот чат" in r.text and "chat not found" not in r.text
    assert 'value="4242"' in r.text
    r = owner.post(
        "/admin/alerts/telegram?lang=ru",
        data={"csrf": csrf, "chat_id": "5550001", "digest_hour": "25"},
    )
    assert r.status_code == 422 and "час сводки" in r.text and 'value="25"' in r.text
