"""The "Open in Telegram" button in headless Chromium on a phone: on the join success
page and the web card, it leads to the bot's t.me start link (answered here by a stub:
the test has no Internet), and that link binds the chat once the guest confirms."""

from __future__ import annotations

import re
from typing import Any

import pytest

from enrollment_support import BONUS_RULES, sms_code
from fakes.telegram import FakeTelegram
from loyalwallet import db
from loyalwallet.enrollment.join import JoinRequest, start_join, verify
from loyalwallet.outbox import worker
from loyalwallet.tgcard import bots
from support import Shop, random_phone
from tgcard_support import GUEST, chat_of, connect

pytestmark = pytest.mark.browser


def _press(page: Any) -> str:
    """Press the button; the start token of the t.me link it led to."""
    page.route(
        "https://t.me/**", lambda route: route.fulfill(status=200, body="telegram", content_type="text/plain")
    )
    button = page.locator("button[data-wallet=telegram]")
    assert button.is_visible() and button.inner_text() == "Открыть в Telegram"
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    button.click()
    page.wait_for_url(re.compile(r"^https://t\.me/cafe_bot\?start="))
    return str(page.url.split("start=")[1])


def test_open_in_telegram_from_the_success_page_and_the_card(
    live_server: Any, phone_page: Any, shop: Shop, app: Any, tg: FakeTelegram
) -> None:
    connect(shop, app, tg)
    pid = shop.program("bonus", BONUS_RULES, name="<img src=x onerror=alert(1)>Кофе")
    phone = random_phone()
    with db.transaction() as session:
        token = start_join(
            session,
            JoinRequest(
                program_id=pid, values={"phone": phone}, personal_data=True, marketing=False, lang="ru"
            ),
        ).token
    code = sms_code(phone)
    with db.transaction() as session:
        assert verify(session, token, code).error is None
    page = phone_page
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{live_server.url}/join/done/{token}")
    card_url = page.locator("a[data-web-card]").get_attribute("href")
    first = _press(page)

    page.goto(f"{live_server.url}{card_url}" if card_url.startswith("/") else card_url)
    second = _press(page)
    assert first != second  # a fresh one-time link each time

    tg.user_sends(GUEST, f"/start {second}")
    bots.poll()
    worker.drain()
    [[yes, _no]] = tg.sent[-1]["reply_markup"]["inline_keyboard"]
    assert "&lt;img" in tg.sent[-1]["text"]
    tg.user_presses(GUEST, yes["callback_data"])
    bots.poll()
    worker.drain()
    code = tg.photos[-1]["caption"].split("<code>")[1].split("</code>")[0]
    assert chat_of(code) is not None
    assert dialogs == []
