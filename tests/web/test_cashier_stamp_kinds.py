"""The cashier page with a card of several stamp kinds (issue 18), in headless Chromium:
the stamps of each kind from the check lines, by hand with a button per kind, and a
manager's correction of one kind."""

from __future__ import annotations

from typing import Any

import pytest

from loyalwallet import db
from loyalwallet.cards.sweeps import check_ledger
from staff_support import add_staff
from support import Shop
from web.test_browser import browser_login

pytestmark = pytest.mark.browser

RULES: dict[str, Any] = {
    "stamps_required": 6,
    "kind_name": "Coffee",
    "qualifying": {"categories": ["coffee"]},
    "reward": {"kind": "free_item", "name": "Free coffee"},
    "kinds": [
        {
            "name": "Pastry",
            "stamps_required": 6,
            "qualifying": {"categories": ["pastry"]},
            "reward": {"kind": "free_item", "name": "Free pastry", "value": 15_000},
        }
    ],
}


def text_has(page: Any, selector: str, text: str) -> None:
    page.wait_for_function(
        "([s, t]) => (document.querySelector(s).textContent || '').includes(t)", arg=[selector, text]
    )


def add_line(page: Any, name: str, category: str, qty: str, price: str) -> None:
    page.click("#add-line")
    row = page.locator("#lines tr").last
    row.locator(".l-name").fill(name)
    row.locator(".l-cat").fill(category)
    row.locator(".l-qty").fill(qty)
    row.locator(".l-price").fill(price)


def test_stamps_per_kind_from_lines_by_hand_and_corrections(page, live_server, shop: Shop) -> None:
    card = shop.card(shop.program("stamp", RULES), name="Вера")
    manager = add_staff(shop, "manager", [shop.location_id])
    browser_login(page, live_server, manager, "/cashier")
    page.wait_for_selector("#cashier[data-ready='1']")
    page.on("dialog", lambda dialog: pytest.fail("a browser prompt: " + dialog.message))

    page.keyboard.type(card["code"])
    page.keyboard.press("Enter")
    page.wait_for_function("document.activeElement.id === 'amount'")
    assert page.text_content("#g-stamps") == "Coffee 0/5 · Pastry 0/5"
    assert page.locator("#kinds-box").is_visible()
    assert page.locator("#kind-buttons button").all_text_contents() == ["+ Coffee", "+ Pastry"]

    # From the check lines: a latte and two muffins.
    page.click("#lines-box summary")
    add_line(page, "Latte", "coffee", "1", "200")
    add_line(page, "Muffin", "pastry", "2", "100")
    text_has(page, "#q-stamps", "Coffee +1 · Pastry +2")
    page.click("#confirm")
    text_has(page, "#message", "Sale recorded")
    text_has(page, "#receipt", "Coffee +1 · Pastry +2")
    assert page.text_content("#g-stamps") == "Coffee 1/5 · Pastry 2/5"

    # By hand, no lines: two pastries with the Pastry button.
    page.wait_for_function("document.querySelector('#amount').value === ''")
    page.fill("#amount", "150")
    page.click("#kind-buttons button[data-kind='2']")
    page.click("#kind-buttons button[data-kind='2']")
    text_has(page, "#kinds-hand", "Pastry +2")
    text_has(page, "#q-stamps", "Coffee +0 · Pastry +2")
    page.click("#confirm")
    text_has(page, "#message", "Sale recorded")
    text_has(page, "#g-stamps", "Coffee 1/5 · Pastry 4/5")
    assert page.text_content("#kinds-hand") == ""  # the next sale starts with none by hand
    after = shop.get(f"/api/v1/cards/{card['code']}").json()
    assert [(k["name"], k["stamps"]) for k in after["stamp_kinds"]] == [("Coffee", 1), ("Pastry", 4)]

    # A manager adds one pastry stamp (the paper card): the pastry card fills up.
    page.click("#stamp-adjust summary")
    assert page.locator("#sa-add").is_hidden()
    page.fill("#sa-reason", "paper card")
    page.click("#sa-kinds button[data-kind='2'][data-delta='1']")
    text_has(page, "#message", "Stamp added")
    text_has(page, "#g-stamps", "Coffee 1/5 · Pastry 0/5")
    after = shop.get(f"/api/v1/cards/{card['code']}").json()
    assert [r["name"] for r in after["rewards"]] == ["Free pastry"]
    with db.read() as session:
        assert [p for p in check_ledger(session) if p["merchant_id"] == shop.merchant_id] == []
