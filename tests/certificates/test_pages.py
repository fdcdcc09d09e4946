"""Staff pages: the dashboard's gift-certificate tile (outstanding liability, sold, spent,
expired) in Russian, absent for a merchant who never sold one."""

from __future__ import annotations

from staff_support import add_staff, login
from support import Shop


def test_dashboard_tile(app, shop: Shop) -> None:
    manager = login(app, add_staff(shop, "manager"))
    assert 'id="kpi-certificates"' not in manager.get("/admin?lang=ru").text
    cert = shop.post("/api/v1/certificates", {"amount": 300_000}).json()
    shop.post("/api/v1/certificates", {"amount": 100_000})
    shop.post(f"/api/v1/certificates/{cert['code']}/redemptions", {"amount": 50_000}, role="cashier")
    html = manager.get("/admin?lang=ru").text
    assert 'id="kpi-certificates"' in html
    assert "Сертификаты: остаток к погашению" in html
    assert "3\u00a0500\u00a0₽" in html  # 4 000 sold - 500 spent
    assert "продано 4\u00a0000\u00a0₽ · погашено 500\u00a0₽ · сгорело 0\u00a0₽" in html


def test_cashier_sells_and_checks_a_certificate_in_the_browser(page, live_server, shop: Shop) -> None:
    cashier = add_staff(shop, "cashier")
    page.goto(f"{live_server.url}/login?next=/cashier/certificates")
    page.fill("#login", cashier.login)
    page.fill("#password", cashier.password)
    page.click("button[type=submit]")
    page.wait_for_url("**/cashier/certificates")
    page.fill("#amount", "0")
    page.click("#cert-sell button[type=submit]")
    assert page.locator("#cert-error").is_visible()
    page.fill("#amount", "3 000")
    page.fill("#recipient_name", "Маша")
    page.fill("#recipient_contact", "masha@example.com")
    page.fill("#message", "С днём рождения!")
    page.click("#cert-sell button[type=submit]")
    code = page.inner_text("#cert-sold [data-code]")
    assert len(code.replace("-", "")) == 16
    got = shop.get(f"/api/v1/certificates/{code}").json()
    assert got["balance"] == 300_000 and got["recipient_contact"] == "masha@example.com"
    assert got["web_url"].endswith(page.get_attribute("#cert-web", "href").rsplit("/", 1)[-1])
    shop.post(f"/api/v1/certificates/{code}/redemptions", {"amount": 100_050}, role="cashier")
    page.fill("#code", code.lower())
    page.click("#cert-find button[type=submit]")
    assert page.inner_text("#cert-found [data-balance]") == "1\u00a0999.50\u00a0₽"
    page.fill("#code", "GAAAA-AAAA-AAAA-AAA")
    page.click("#cert-find button[type=submit]")
    assert page.locator("#cert-error").is_visible()


def test_cashier_looks_up_an_unknown_certificate_in_russian(app, shop: Shop) -> None:
    """The page said "gift certificate not found" to a Russian cashier."""
    cashier = login(app, add_staff(shop, "cashier"))
    html = cashier.get("/cashier/certificates?code=NO-SUCH-CODE&lang=ru").text
    assert "подарочный сертификат не найден" in html, html
    assert "not found" not in html
