"""The program rules form in headless Chromium: edit a tier, add one with the keyboard
and the add button, save, see it persisted; the Russian UI shows Russian labels."""

from __future__ import annotations

import pytest

from staff_support import StaffLogin, add_staff
from support import Shop

pytestmark = pytest.mark.browser

BONUS = {
    "tiers": [
        {"name": "Bronze", "min_spend": 0, "cashback_pct": 5},
        {"name": "Gold", "min_spend": 1_000_000, "cashback_pct": 10},
    ],
    "welcome_points": 500,
}


def browser_login(page, live_server, who: StaffLogin, next_path: str) -> None:
    page.goto(f"{live_server.url}/login?next={next_path}")
    page.fill("#login", who.login)
    page.fill("#password", who.password)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")


def test_owner_edits_and_adds_a_tier(page, live_server, shop: Shop) -> None:
    program = shop.program("bonus", BONUS)
    owner = add_staff(shop, "owner")
    browser_login(page, live_server, owner, f"/admin/programs/{program}")
    page.wait_for_selector("#rules-form[data-ready='1']")
    assert page.locator("#tier-rows tr").count() == 2  # the no-JS empty row is gone
    assert page.input_value("#rf-tier-1-min_spend") == "10 000"
    page.fill("#rf-tier-1-pct", "12.5")
    page.click("#add-tier")
    # The new row's first input has the focus: type the tier in with the keyboard.
    page.keyboard.type("Platinum")
    page.keyboard.press("Tab")
    page.keyboard.type("50 000")
    page.keyboard.press("Tab")
    page.keyboard.type("15")
    assert page.locator("#tier-rows tr").count() == 3
    with page.expect_navigation():
        page.click("#save-rules")
    assert page.locator(".flash").is_visible()
    rules = shop.get(f"/api/v1/programs/{program}").json()["rules"]
    assert [(t["name"], t["min_spend"], t["cashback_pct"]) for t in rules["tiers"]] == [
        ("Bronze", 0, "5"),
        ("Gold", 1_000_000, "12.5"),
        ("Platinum", 5_000_000, "15"),
    ]
    page.reload()
    page.wait_for_selector("#rules-form[data-ready='1']")
    assert page.input_value("#rf-tier-2-name") == "Platinum"
    assert page.input_value("#rf-tier-2-min_spend") == "50 000"
    assert page.input_value("#rf-tier-1-pct") == "12.5"

    # Removing a row and saving takes the tier away.
    page.click("#tier-rows tr:nth-child(3) .remove-tier")
    with page.expect_navigation():
        page.click("#save-rules")
    assert page.locator(".flash").is_visible()
    assert len(shop.get(f"/api/v1/programs/{program}").json()["rules"]["tiers"]) == 2

    page.goto(f"{live_server.url}/admin/programs/{program}?lang=ru")
    page.wait_for_selector("#rules-form[data-ready='1']")
    assert page.text_content("#rules-form legend") == "Уровни"
    assert page.text_content("label[for='rf-welcome_points']") == "Приветственные баллы"
    assert page.text_content("#add-tier").strip() == "+ Добавить уровень"
    assert page.input_value("#rf-tier-1-pct") == "12,5"
