"""Numbers a café can trust, in headless Chromium: revenue and average check net of
refunds (and saying so), when the figures were read, today's guests live after a
snapshot, and an empty dashboard that tells the next step."""

from __future__ import annotations

import pytest

from staff_support import add_staff
from support import Shop
from web.test_browser import BONUS, browser_login

pytestmark = pytest.mark.browser


def test_empty_dashboard_tells_the_next_step(page, live_server, shop: Shop) -> None:
    owner = add_staff(shop, "owner")
    browser_login(page, live_server, owner)
    assert "create your loyalty programme" in page.text_content("#empty-next")
    assert page.get_attribute("#empty-next a", "href") == "/admin/programs/new"
    program = shop.program("bonus", BONUS)
    page.reload()
    assert "record a sale on the cashier page" in page.text_content("#empty-next")
    hrefs = [a.get_attribute("href") for a in page.locator("#empty-next a").all()]
    assert hrefs == ["/cashier", f"/admin/programs/{program}"]
    assert "No guest has bought yet" in page.text_content("#rfm")


def test_net_revenue_and_live_guests_after_a_snapshot(page, live_server, shop: Shop) -> None:
    from loyalwallet.analytics import snapshot

    program = shop.program("bonus", BONUS)
    code = shop.card(program)["code"]
    snapshot.refresh_all(max_age=0)  # "never bought 1"
    sales = [shop.buy(code, 30_000) for _ in range(7)]
    assert shop.post(f"/api/v1/purchases/{sales[0]['id']}/refunds", {}).status_code == 201
    owner = add_staff(shop, "owner")
    browser_login(page, live_server, owner)
    assert page.locator("#empty-next").count() == 0
    assert page.text_content("#st-active").strip() == "1"  # not "active 0" after 7 sales
    assert "Guests now and RFM: live" in page.text_content("#freshness")
    assert "live, as of" in page.text_content("#freshness")
    assert "net of refunds" in page.text_content("#kpi-revenue .label")
    assert "1,800.00" in page.text_content("#kpi-revenue .value").replace("\u00a0", ",").replace(" ", ",")
    assert "refunded" in page.text_content("#kpi-revenue .hint")
    assert "net of refunds" in page.text_content("#kpi-avg .label")
    assert "300.00" in page.text_content("#kpi-avg .value")  # 1 800.00 / 6 sales kept

    page.goto(f"{live_server.url}/admin?lang=ru")
    page.wait_for_load_state("networkidle")
    assert "за вычетом возвратов" in page.text_content("#kpi-revenue .label")
