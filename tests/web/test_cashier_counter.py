"""The cashier page as a scanner and a hurry use it (headless Chromium): Enter right after
the amount records the sale, bad amounts are explained at the field, a large sale asks
once more, and each sale shows once in the recent purchases."""

from __future__ import annotations

import pytest

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
