"""The staff web app in headless Chromium: login, a cashier sale with points and a
refund, the card designer's live preview, and the dashboard on seeded data."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from enrollment_support import sms_code
from loyalwallet import db
from loyalwallet.outbox.models import OutboxMessage
from staff_support import StaffLogin, add_staff
from support import Shop

pytestmark = pytest.mark.browser

BONUS = {
    "tiers": [
        {"name": "Bronze", "min_spend": 0, "cashback_pct": 5},
        {"name": "Gold", "min_spend": 1_000_000, "cashback_pct": 10},
    ],
    "welcome_points": 500,
    "max_redeem_pct": 50,
}


def browser_login(page, live_server, who: StaffLogin, next_path: str = "") -> None:
    page.goto(f"{live_server.url}/login" + (f"?next={next_path}" if next_path else ""))
    page.fill("#login", who.login)
    page.fill("#password", who.password)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")


def test_login_page(page, live_server, shop: Shop) -> None:
    owner = add_staff(shop, "owner")
    page.goto(f"{live_server.url}/login")
    page.fill("#login", owner.login)
    page.fill("#password", "not the password")
    page.click("button[type=submit]")
    assert page.locator("#login-error").is_visible()
    browser_login(page, live_server, owner)
    assert page.url.endswith("/admin")
    assert page.locator("#kpis").is_visible()
    page.click("text=Log out")
    page.wait_for_url("**/login")


def test_cashier_sale_with_redemption_and_refund(page, live_server, shop: Shop) -> None:
    program = shop.program("bonus", BONUS)
    card = shop.card(program, name="Анна")
    cashier = add_staff(shop, "cashier", [shop.location_id])
    browser_login(page, live_server, cashier, "/cashier")
    assert page.url.endswith("/cashier")
    page.wait_for_selector("#cashier[data-ready='1']")
    # A 2D scanner types the code and Enter into the focused box.
    page.keyboard.type(card["code"])
    page.keyboard.press("Enter")
    page.wait_for_selector("#guest-card:not([hidden])")
    assert page.text_content("#g-name") == "Анна"
    assert page.text_content("#g-balance").startswith("500")
    page.fill("#amount", "400")
    page.fill("#redeem", "100")
    page.wait_for_selector("#quote:not([hidden])")
    page.wait_for_function("document.querySelector('#q-topay').textContent.startsWith('300')")
    assert not page.is_disabled("#confirm")
    page.dblclick("#confirm")  # a double click must not charge twice
    page.wait_for_selector("#receipt:not([hidden])")
    page.wait_for_function("document.querySelector('#message').textContent.includes('Sale recorded')")
    after = shop.get(f"/api/v1/cards/{card['code']}").json()
    assert after["visits"] == 1
    assert after["balance"] == 500 - 100 + 15  # 5 % of the 300.00 paid
    purchases = shop.get("/api/v1/purchases", params={"card": card["code"]}).json()["items"]
    assert len(purchases) == 1 and purchases[0]["location_id"] == shop.location_id
    page.on("dialog", lambda dialog: pytest.fail("a browser prompt: " + dialog.message))
    page.click("#refund-last")  # an in-page dialog, the whole amount filled in
    page.wait_for_selector("#refund-dialog[open]")
    assert page.input_value("#rd-amount") == "400.00"
    page.press("#rd-amount", "Enter")
    page.wait_for_selector("#rd-done:not([hidden])")
    assert page.text_content("#rd-r-returned") == "100" and page.text_content("#rd-r-reversed") == "15"
    page.wait_for_function("document.querySelector('#message').textContent.includes('Refunded')")
    page.click("#rd-close")
    assert page.locator("#refund-dialog[open]").count() == 0
    refunded = shop.get(f"/api/v1/cards/{card['code']}").json()
    assert refunded["balance"] == 500 and refunded["spend"] == 0


def test_cashier_finds_by_phone_and_issues_a_card(page, live_server, shop: Shop) -> None:
    """A phone that finds nobody offers the new-card form, but focus stays in the scan box:
    the next scan + Enter is a lookup, never a card. A card needs consent and the SMS code."""
    program = shop.program("bonus", BONUS)
    other = shop.card(program)
    cashier = add_staff(shop, "cashier", [shop.location_id])
    browser_login(page, live_server, cashier, "/cashier")
    page.wait_for_selector("#cashier[data-ready='1']")
    page.fill("#scan", "8 916 555-01-02")
    page.press("#scan", "Enter")
    page.wait_for_selector("#enroll:not([hidden])")
    assert page.evaluate("document.activeElement.id") == "scan"
    # The next guest's card is scanned at once: a scanner types the code and Enter.
    page.keyboard.type(other["code"])
    page.keyboard.press("Enter")
    page.wait_for_selector("#guest-card:not([hidden])")
    assert shop.get("/api/v1/cards", params={"phone": "+79165550102"}).json()["items"] == []

    page.fill("#scan", "8 916 555-01-02")
    page.press("#scan", "Enter")
    page.wait_for_selector("#enroll:not([hidden])")
    page.fill("#e-name", "Борис")
    page.click("#enroll-btn")  # no consent ticked: nothing is sent
    page.wait_for_function("document.querySelector('#message').classList.contains('error')")
    assert page.locator("#e-otp-box").is_hidden()
    page.check("#e-consent")
    page.click("#enroll-btn")
    page.wait_for_selector("#e-otp-box:not([hidden])")
    code = sms_code("+79165550102")
    page.fill("#e-otp", "000000" if code != "000000" else "111111")
    page.press("#e-otp", "Enter")
    page.wait_for_function("document.querySelector('#message').textContent.includes('Wrong code')")
    assert shop.get("/api/v1/cards", params={"phone": "+79165550102"}).json()["items"] == []
    page.fill("#e-otp", code)
    page.press("#e-otp", "Enter")
    page.wait_for_selector("#guest-card:not([hidden])")
    assert page.text_content("#g-name") == "Борис"
    assert shop.get("/api/v1/cards", params={"phone": "+79165550102"}).json()["items"][0]["balance"] == 500

    # Send the new card to the guest: no e-mail was given, the phone was.
    assert page.locator("#send-box").is_visible()
    page.click("[data-send=email]")
    page.wait_for_function("document.querySelector('#message').textContent.includes('no phone or e-mail')")
    page.click("[data-send=sms]")
    page.wait_for_function("document.querySelector('#message').textContent.includes('on its way')")
    assert page.locator("#send-box").is_hidden()
    from loyalwallet.enrollment.sms import console
    from loyalwallet.outbox import worker

    worker.drain()
    sent = console.last_to("+79165550102")
    assert sent is not None and "/c/" in sent.text


def test_designer_live_preview_and_save(page, live_server, shop: Shop) -> None:
    program = shop.program("bonus", BONUS)
    shop.card(program)
    owner = add_staff(shop, "owner")
    browser_login(page, live_server, owner, f"/admin/programs/{program}/design")
    page.wait_for_selector("#designer[data-ready='1']")
    assert page.locator("#update-note").is_visible()
    page.fill("#d-logo-text", "Зерно")
    assert page.text_content("#pv-logo-text") == "Зерно"
    page.eval_on_selector("#d-bg", "el => { el.value = '#114477'; el.dispatchEvent(new Event('input')); }")
    assert (
        page.eval_on_selector("#pv-front", "el => getComputedStyle(el).backgroundColor") == "rgb(17, 68, 119)"
    )
    page.fill("#d-terms", "1 балл = 1 рубль")
    assert "1 балл = 1 рубль" in page.text_content("#pv-back")
    page.check("#d-fields input[value=stamps]")
    assert page.locator("#pv-fields .field").count() == 4
    page.click("#save-design")
    page.wait_for_selector(".flash")
    saved = shop.get(f"/api/v1/programs/{program}").json()
    assert saved["version"] == 2
    with db.read() as session:
        topics = session.scalars(
            select(OutboxMessage.topic).where(OutboxMessage.merchant_id == shop.merchant_id)
        ).all()
    assert "program.changed" in topics


def test_dashboard_renders_seeded_data(page, live_server, shop: Shop) -> None:
    from loyalwallet.analytics import rollup

    program = shop.program("bonus", BONUS)
    codes = [shop.card(program)["code"] for _ in range(3)]
    items = [
        {"name": "Latte", "category": "coffee", "qty": 1, "price": 25_000},
        {"name": "Cake", "category": "dessert", "qty": 1, "price": 15_000},
    ]
    shop.buy(codes[0], 40_000, items=items, location_id=shop.location_id)
    shop.buy(codes[0], 25_000, location_id=shop.location_id)
    shop.buy(codes[1], 30_000)
    rollup.catch_up(settle=dt.timedelta(0))
    owner = add_staff(shop, "owner")
    browser_login(page, live_server, owner)
    assert page.text_content("#kpi-purchases .value").strip() == "3"
    assert page.text_content("#kpi-buyers .value").strip() == "2"
    assert "50.0" in page.text_content("#kpi-repeat .value")
    assert "316.66" in page.text_content("#kpi-avg .value")  # 950.00 / 3, floored
    assert "100.0" in page.text_content("#kpi-upsell .value")
    assert page.locator("#trend svg rect").count() >= 30
    assert page.locator("#cohorts tr").count() == 2  # the header and this month: no empty months before it
    assert page.locator("#rfm tr").count() == 9
    page.select_option("#location", str(shop.location_id))
    page.click("#filters button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert f"location={shop.location_id}" in page.url
    assert page.text_content("#kpi-purchases .value").strip() == "2"
    assert page.text_content("#kpi-buyers .value").strip() == "1"
