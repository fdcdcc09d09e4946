"""The cashier page as a scanner and a hurry use it (headless Chromium): Enter right after
the amount records the sale, bad amounts are explained at the field, a large sale asks
once more, and each sale shows once in the recent purchases; refunds in an in-page dialog
with the stamps returned, a manager's stamp corrections, a plastic card through the
guest's SMS code."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from enrollment_support import sms_code
from loyalwallet import db
from loyalwallet.cards.sweeps import check_ledger
from loyalwallet.merchants.actors import system
from staff_support import add_staff
from support import Shop
from web.test_browser import BONUS, browser_login

pytestmark = pytest.mark.browser


def _purchases(shop: Shop, code: str) -> list[dict]:
    return list(shop.get("/api/v1/purchases", params={"card": code}).json()["items"])


def test_scan_amount_enter(page, live_server, shop: Shop) -> None:
    program = shop.program("bonus", BONUS)
    card = shop.card(program, name="Анна")
    cashier = add_staff(shop, "cashier", [shop.location_id])
    browser_login(page, live_server, cashier, "/cashier")
    page.wait_for_selector("#cashier[data-ready='1']")

    # The figure for the report: scan (code + Enter), the amount, Enter. Nothing else.
    keys = 0
    page.keyboard.type(card["code"])
    page.keyboard.press("Enter")
    keys += len(card["code"]) + 1
    page.wait_for_selector("#guest-card:not([hidden])")
    assert page.evaluate("document.activeElement.id") == "amount"
    page.keyboard.type("350")
    page.keyboard.press("Enter")  # at once: the quote is still on its way
    keys += 4
    page.wait_for_function("document.querySelector('#message').textContent.includes('Sale recorded')")
    assert [p["amount"] for p in _purchases(shop, card["code"])] == [35000]
    print(f"\nscanner sale: {keys} keystrokes ({len(card['code'])}-character code + Enter, '350' + Enter)")
    page.wait_for_function("document.querySelectorAll('#g-history li').length >= 1")
    assert page.locator("#g-history li").count() == 1  # the sale once, not twice

    # Bad amounts: a message at the field, nothing recorded.
    page.keyboard.type(card["code"])
    page.keyboard.press("Enter")
    page.wait_for_selector("#guest-card:not([hidden])")
    for typed, says in (
        ("0", "more than zero"),
        ("abc", "as a number"),
        ("-5", "cannot be negative"),
        ("99999999999", "too large"),
    ):
        page.fill("#amount", typed)
        page.press("#amount", "Enter")
        page.wait_for_function(f"document.querySelector('#amount-error').textContent.includes('{says}')")
        assert page.get_attribute("#amount", "aria-invalid") == "true"
    assert len(_purchases(shop, card["code"])) == 1

    # Above 10 000: the first Enter only asks, the second records.
    page.fill("#amount", "1000000")
    page.press("#amount", "Enter")
    page.wait_for_function("document.querySelector('#message').classList.contains('warn')")
    assert page.text_content("#amount-error") == ""
    assert len(_purchases(shop, card["code"])) == 1
    page.press("#amount", "Enter")
    page.wait_for_function("document.querySelector('#message').textContent.includes('Sale recorded')")
    assert sorted(p["amount"] for p in _purchases(shop, card["code"])) == [35000, 100000000]
    page.wait_for_function("document.querySelectorAll('#g-history li').length >= 2")
    assert page.locator("#g-history li").count() == 2


STAMPS = {"stamps_required": 3, "reward": {"kind": "free_item", "name": "Free coffee", "value": 20_000}}


def test_stamp_card_refund_dialog_and_manager_corrections(page, live_server, shop: Shop) -> None:
    program = shop.program("stamp", STAMPS)
    card = shop.card(program, name="Вера")
    manager = add_staff(shop, "manager", [shop.location_id])
    browser_login(page, live_server, manager, "/cashier")
    page.wait_for_selector("#cashier[data-ready='1']")
    page.on("dialog", lambda dialog: pytest.fail("a browser prompt: " + dialog.message))

    for _ in range(2):  # stamps_required 3: two paid visits make the reward
        page.keyboard.type(card["code"])
        page.keyboard.press("Enter")
        page.wait_for_function("document.activeElement.id === 'amount'")  # the card is found
        page.keyboard.type("250")
        page.keyboard.press("Enter")
        page.wait_for_function("document.querySelector('#message').textContent.includes('Sale recorded')")
        page.wait_for_function("document.querySelector('#amount').value === ''")
    assert page.text_content("#g-stamps") == "0 / 2"
    assert "+1 stamp" in page.text_content("#receipt")  # the count in its plural form
    assert "Free coffee (up to 200.00" in page.text_content("#reward-name")

    # The last sale's refund takes its stamp back (and the reward it made).
    page.click("#refund-last")
    page.wait_for_selector("#refund-dialog[open]")
    page.fill("#rd-amount", "300")
    page.press("#rd-amount", "Enter")
    page.wait_for_function("document.querySelector('#rd-error').textContent.includes('At most')")
    page.fill("#rd-amount", "250")
    page.click("#rd-ok")
    page.wait_for_selector("#rd-done:not([hidden])")
    assert page.text_content("#rd-r-stamps") == "1" and page.locator("#rd-r-points-box").is_hidden()
    assert "1/2" in page.text_content("#rd-r-card")
    page.keyboard.press("Escape")  # closes the dialog, keeps the card on screen
    assert page.locator("#refund-dialog[open]").count() == 0
    assert page.locator("#guest-card").is_visible() and page.text_content("#g-stamps") == "1 / 2"
    after = shop.get(f"/api/v1/cards/{card['code']}").json()
    assert after["stamps"] == 1 and after["rewards"] == []

    # A manager adds a stamp with a reason (the paper card): the reward is back.
    page.click("#stamp-adjust summary")
    page.click("#sa-add")
    page.wait_for_function("document.querySelector('#sa-error').textContent.includes('reason')")
    page.fill("#sa-reason", "paper card")
    page.click("#sa-add")
    page.wait_for_function("document.querySelector('#message').textContent.includes('Stamp added')")
    after = shop.get(f"/api/v1/cards/{card['code']}").json()
    assert after["stamps"] == 0 and len(after["rewards"]) == 1
    page.fill("#sa-reason", "scanned twice")
    page.click("#sa-remove")  # no stamp to remove: said at the button, nothing written
    page.wait_for_function("document.querySelector('#sa-error').textContent.length > 0")
    items = shop.get(f"/api/v1/cards/{card['code']}/transactions").json()["items"]
    assert [(i.get("kind"), i.get("reason")) for i in items if i.get("kind") == "adjustment"] == [
        ("adjustment", "paper card")
    ]
    with db.read() as session:
        from loyalwallet.merchants.models import AuditLog

        actions = session.scalars(
            select(AuditLog.action).where(AuditLog.merchant_id == shop.merchant_id)
        ).all()
        assert "card.adjust" in actions
        assert check_ledger(session) == []

    # The reward from the amount alone: 200.00 off a 300.00 check.
    page.keyboard.type(card["code"])
    page.keyboard.press("Enter")
    # A scan after clicking buttons is a new scan, not appended to the last code.
    page.wait_for_function("document.activeElement.id === 'amount'")
    assert page.input_value("#scan") == card["code"]
    page.wait_for_selector("#reward-box:not([hidden])")
    page.fill("#amount", "300")
    page.check("#use-reward")
    page.wait_for_function("document.querySelector('#q-topay').textContent.startsWith('100')")

    # A cashier sees no stamp corrections.
    cashier = add_staff(shop, "cashier", [shop.location_id])
    page.context.clear_cookies()
    browser_login(page, live_server, cashier, "/cashier")
    page.wait_for_selector("#cashier[data-ready='1']")
    assert page.locator("#stamp-adjust").count() == 0


def test_plastic_card_needs_the_guests_sms_code(page, live_server, shop: Shop) -> None:
    from loyalwallet.imports.service import add_range
    from loyalwallet.programs.models import Program

    program = shop.program("stamp", STAMPS)
    with db.transaction() as session:
        add_range(
            session, system(shop.merchant_id), session.get(Program, program), name="p", prefix="77", length=8
        )
    cashier = add_staff(shop, "cashier", [shop.location_id])
    browser_login(page, live_server, cashier, "/cashier")
    page.wait_for_selector("#cashier[data-ready='1']")
    page.keyboard.type("77000042")
    page.keyboard.press("Enter")
    page.wait_for_selector("#enroll:not([hidden])")
    assert page.evaluate("document.activeElement.id") == "scan"
    page.fill("#e-phone", "+79165550177")
    page.click("#enroll-btn")  # without consent: nothing sent
    page.wait_for_function("document.querySelector('#message').classList.contains('error')")
    page.check("#e-consent")
    page.click("#enroll-btn")
    page.wait_for_selector("#e-otp-box:not([hidden])")
    assert shop.get("/api/v1/cards", params={"phone": "+79165550177"}).json()["items"] == []
    page.fill("#e-otp", sms_code("+79165550177"))
    page.press("#e-otp", "Enter")
    page.wait_for_selector("#guest-card:not([hidden])")
    cards = shop.get("/api/v1/cards", params={"phone": "+79165550177"}).json()["items"]
    assert [c["code"] for c in cards] == ["77000042"]


def test_owner_sets_the_large_sale_threshold(page, live_server, shop: Shop) -> None:
    program = shop.program("bonus", BONUS)
    card = shop.card(program)
    owner = add_staff(shop, "owner")
    browser_login(page, live_server, owner, "/admin/settings/cashier")
    assert page.input_value("#confirm_sale_above") == "10 000"  # the default
    page.fill("#confirm_sale_above", "-5")
    page.click("#cashier-settings button")
    page.wait_for_selector("#confirm_sale_above-error")
    assert page.input_value("#confirm_sale_above") == "-5"  # what was typed stays
    page.fill("#confirm_sale_above", "500")
    page.click("#cashier-settings button")
    page.wait_for_load_state("networkidle")
    assert page.input_value("#confirm_sale_above") == "500"
    assert page.get_attribute("#confirm_sale_above", "aria-invalid") is None

    page.goto(f"{live_server.url}/cashier")
    page.wait_for_selector("#cashier[data-ready='1']")
    assert page.get_attribute("#cashier", "data-confirm-above") == "50000"
    page.keyboard.type(card["code"])
    page.keyboard.press("Enter")
    page.wait_for_selector("#guest-card:not([hidden])")
    page.keyboard.type("600")
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#message').classList.contains('warn')")
    assert _purchases(shop, card["code"]) == []
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#message').textContent.includes('Sale recorded')")
    assert [p["amount"] for p in _purchases(shop, card["code"])] == [60000]

    manager = add_staff(shop, "manager", [shop.location_id])
    page.context.clear_cookies()
    browser_login(page, live_server, manager)
    assert page.goto(f"{live_server.url}/admin/settings/cashier").status == 403
