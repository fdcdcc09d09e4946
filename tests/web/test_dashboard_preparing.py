"""While the guests' purchase days are being built after an upgrade, the dashboard says
how far it is, in headless Chromium; the figures are right all along."""

from __future__ import annotations

import datetime as dt

import pytest

from loyalwallet.analytics import activity
from staff_support import add_staff
from support import Shop
from web.test_browser import BONUS, browser_login

pytestmark = pytest.mark.browser


def test_dashboard_says_figures_are_being_prepared(page, live_server, shop: Shop) -> None:
    program = shop.program("bonus", BONUS)
    code = shop.card(program)["code"]
    shop.buy(code, 30_000)
    shop.buy(code, 20_000)
    # A backfill under way (as after an upgrade of a big database): started, one range done.
    activity.step(settle=dt.timedelta(0), cards=1, backfill_over=0)
    activity.step(settle=dt.timedelta(0), cards=1, backfill_over=0)
    owner = add_staff(shop, "owner")
    browser_login(page, live_server, owner)
    text = page.text_content("#preparing")
    assert "figures being prepared" in text and "%" in text
    assert page.text_content("#kpi-buyers .value").strip() == "1"
    assert page.text_content("#kpi-repeat .value").replace("\u00a0", " ").strip() == "100.0 %"

    page.goto(f"{live_server.url}/admin?lang=ru")
    page.wait_for_load_state("networkidle")
    assert "данные готовятся" in page.text_content("#preparing")

    activity.catch_up(settle=dt.timedelta(0))
    page.goto(f"{live_server.url}/admin")
    page.wait_for_load_state("networkidle")
    assert page.locator("#preparing").count() == 0
