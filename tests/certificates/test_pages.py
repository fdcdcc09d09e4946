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
