"""Staff pages: the dashboard's subscription tile in Russian (absent for a merchant who
never sold one); the cashier's subscription page in headless Chromium — a manager adds a
programme, the cashier sells it on a card, hands a cup over (one unit), is refused a
second one the same day, renews and refunds the unused part."""

from __future__ import annotations

from staff_support import add_staff, login
from support import Shop


def test_dashboard_tile(app, shop: Shop) -> None:
    manager = login(app, add_staff(shop, "manager"))
    assert 'id="kpi-subscriptions"' not in manager.get("/admin?lang=ru").text
    plan = shop.post(
        "/api/v1/subscription-plans", {"name": "Cups", "units": 10, "period_days": 30, "price": 150_000},
        role="manager",
    ).json()  # fmt: skip
    code = shop.card(shop.program("bonus"))["code"]
    sub = shop.post("/api/v1/subscriptions", {"plan_id": plan["id"], "card": code}, role="cashier").json()
    shop.post(f"/api/v1/subscriptions/{sub['id']}/uses", {}, role="cashier")
    html = manager.get("/admin?lang=ru").text
    assert 'id="kpi-subscriptions"' in html and "Активные абонементы" in html
    assert "списаний сегодня 1 · выручка 1\u00a0500\u00a0₽" in html


def test_cashier_sells_uses_renews_and_refunds_in_the_browser(page, live_server, shop: Shop) -> None:
    manager = add_staff(shop, "manager")
    code = shop.card(shop.program("bonus"))["code"]
    page.goto(f"{live_server.url}/login?next=/cashier/subscriptions")
    page.fill("#login", manager.login)
    page.fill("#password", manager.password)
    page.click("button[type=submit]")
    page.wait_for_url("**/cashier/subscriptions")
    page.fill("#plan-new #name", "Чашка в день")
    page.fill("#units", "30")
    page.fill("#period_days", "30")
    page.fill("#daily_limit", "1")
    page.fill("#price", "4 500")
    page.click("#plan-new button[type=submit]")
    page.fill("#sub-find #card", code)
    page.click("#sub-find button[type=submit]")
    page.select_option("#plan_id", label="Чашка в день — 4\u00a0500.00\u00a0₽")
    page.click("#sub-sell button[type=submit]")
    sub = shop.get(f"/api/v1/cards/{code}/subscriptions", role="cashier").json()["items"][0]
    assert sub["units_left"] == 30 and sub["paid"] == 450_000
    page.click(f"[data-sub='{sub['id']}'] [data-use]")
    assert "29" in page.inner_text(f"[data-sub='{sub['id']}'] [data-left]")
    page.click(f"[data-sub='{sub['id']}'] [data-use]")
    assert page.locator("#sub-error").is_visible()  # once a day
    page.click(f"[data-sub='{sub['id']}'] [data-renew]")
    assert "59" in page.inner_text(f"[data-sub='{sub['id']}'] [data-left]")
    page.click(f"[data-sub='{sub['id']}'] [data-refund]")
    assert page.get_attribute(f"[data-sub='{sub['id']}']", "data-status") == "refunded"
    got = shop.get(f"/api/v1/subscriptions/{sub['id']}").json()
    assert got["units_left"] == 0 and got["paid"] == 900_000 - 900_000 * 59 // 60
