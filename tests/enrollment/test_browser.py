"""The join flow in headless Chromium on a phone-sized screen: the form, the SMS code from
the fake SMS.ru, the wallet buttons, the web card; and bad input as a guest sees it."""

from __future__ import annotations

import re
from typing import Any

import pytest

from enrollment_support import BONUS_RULES, connect_wallets
from loyalwallet.outbox import worker
from support import random_phone

pytestmark = pytest.mark.browser

ANDROID_UA = "Mozilla/5.0 (Linux; Android 15; Pixel 9) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Mobile Safari/537.36"


def _no_sideways_scroll(page: Any) -> None:
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def _code_from_fake(fake: Any, phone: str) -> str:
    worker.drain()  # the test app runs no embedded worker: deliver the SMS now
    sms = fake.last_to(phone)
    assert sms is not None
    return re.search(r"\b(\d{6})\b", sms.msg).group(1)  # type: ignore[union-attr]


def test_join_on_a_phone_end_to_end(live_server, phone_page, shop, fake_smsru) -> None:
    pid = shop.program("bonus", BONUS_RULES)
    connect_wallets(shop.merchant_id)
    page = phone_page
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{live_server.url}/join/{pid}?utm_source=instagram")
    assert page.locator("h1").inner_text() == "bonus program"
    assert page.get_by_text("100 приветственных баллов").is_visible()
    _no_sideways_scroll(page)

    evil = "<img src=x onerror=alert(1)>Аня"
    phone = random_phone()
    page.fill("#f-name", evil)
    page.fill("#f-phone", phone.replace("+7", "8 "))
    page.check("input[name=personal_data]")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/join/verify/"))
    assert "Введите код из SMS" in page.locator("h1").inner_text()
    assert page.locator("[data-wait]").is_disabled()  # the resend countdown runs
    _no_sideways_scroll(page)

    page.fill("#code", _code_from_fake(fake_smsru, phone))  # six digits submit by themselves
    page.wait_for_url(re.compile(r"/join/done/"))
    assert page.locator("h1").inner_text() == "Ваша карта готова!"
    apple = page.locator("a[data-wallet=apple]")
    google = page.locator("a[data-wallet=google]")
    assert apple.is_visible() and google.is_visible()
    assert apple.get_attribute("href").endswith("/pass.pkpass")  # type: ignore[union-attr]
    assert google.get_attribute("href").endswith("/google")  # type: ignore[union-attr]
    _no_sideways_scroll(page)

    page.click("a[data-web-card]")
    page.wait_for_url(re.compile(r"/c/[A-Za-z0-9_-]+$"))
    assert page.locator("[data-qr] svg").is_visible()
    assert page.locator("[data-figure] .big").inner_text() == "100"
    assert page.locator(".lc-holder").inner_text() == evil  # shown as text, never run
    assert dialogs == []
    _no_sideways_scroll(page)
    registered = page.evaluate("navigator.serviceWorker.ready.then(r => r.scope)")
    assert registered.endswith("/c/")
    assert page.locator("link[rel=manifest]").count() == 1


def test_android_gets_the_google_button(live_server, browser, shop) -> None:
    from loyalwallet import db
    from loyalwallet.enrollment.join import JoinRequest, start_join, verify

    pid = shop.program("bonus", BONUS_RULES)
    connect_wallets(shop.merchant_id)
    phone = random_phone()
    with db.transaction() as session:
        token = start_join(
            session,
            JoinRequest(
                program_id=pid, values={"phone": phone}, personal_data=True, marketing=False, lang="en"
            ),
        ).token
    from enrollment_support import sms_code

    code = sms_code(phone)
    with db.transaction() as session:
        assert verify(session, token, code).error is None
    context = browser.new_context(
        viewport={"width": 412, "height": 915}, user_agent=ANDROID_UA, is_mobile=True
    )
    page = context.new_page()
    page.goto(f"{live_server.url}/join/done/{token}?lang=en")
    assert page.locator("a[data-wallet=google]").is_visible()
    assert page.locator("a[data-wallet=apple]").count() == 0
    context.close()


def test_bad_input_as_the_guest_sees_it(live_server, page, shop, fake_smsru) -> None:
    pid = shop.program("bonus", BONUS_RULES)
    page.goto(f"{live_server.url}/join/{pid}?lang=en")
    page.fill("#f-phone", "12345")
    page.click("button[type=submit]")
    assert page.locator("[data-field=phone] .field-error").inner_text() == "Enter a valid mobile phone number"
    assert (
        page.locator("[data-field=personal_data] .field-error").inner_text()
        == "Please agree to the processing of personal data"
    )
    phone = random_phone()
    page.fill("#f-phone", phone)
    page.check("input[name=personal_data]")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/join/verify/"))
    code = _code_from_fake(fake_smsru, phone)
    wrong = "000000" if code != "000000" else "111111"
    page.evaluate("document.getElementById('code').dataset.sent = '1'")  # type, then press the button
    page.fill("#code", wrong)
    page.click(".code-form button")
    assert page.locator(".notice.problem").inner_text() == "Wrong code. Tries left: 4."

    shop.call("PATCH", f"/api/v1/programs/{pid}", json={"status": "archived"})
    page.goto(f"{live_server.url}/join/{pid}?lang=ru")
    assert page.locator("h1").inner_text() == "Эта программа лояльности больше не принимает новых участников"


def test_website_widget_opens_the_join_form(live_server, page, shop) -> None:
    pid = shop.program("bonus", BONUS_RULES)
    page.goto(f"{live_server.url}/static/app.css")  # any page of another document
    page.set_content(
        "<html lang='en'><body><h1>Café site</h1>"
        f"<script src='{live_server.url}/static/enrollment/widget.js' data-program='{pid}' "
        "data-channel='site' data-label='Get our card'></script></body></html>"
    )
    page.click("button[data-loyalwallet-widget]")
    frame = page.frame_locator("iframe[title='Get our card']")
    frame.locator("#f-phone").wait_for()
    assert frame.locator("input[name=channel]").get_attribute("value") == "site"
    assert frame.locator(".brand-bar").count() == 0  # embedded: no page chrome
