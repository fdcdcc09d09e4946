"""The guest's side of a gift certificate: its web card in a real browser (balance,
valid-until, the code to show at the counter) in Russian and English, after a spend,
once cancelled, and the printable PDF with the QR."""

from __future__ import annotations

import re

import httpx

from support import Shop


def _sell(shop: Shop, **extra) -> dict:
    r = shop.post("/api/v1/certificates", {"amount": 300_000, "valid_days": 30, **extra}, role="cashier")
    assert r.status_code == 201, r.text
    return r.json()


def test_web_card_shows_balance_expiry_and_code(shop: Shop, live_server, page) -> None:
    cert = _sell(shop, message="С днём рождения!")
    shop.post(f"/api/v1/certificates/{cert['code']}/redemptions", {"amount": 50_000}, role="cashier")
    path = cert["web_url"].replace("http://testserver", live_server.url)
    page.goto(path + "?lang=ru")
    assert "2 500 ₽".replace(" ", "\u00a0") in page.inner_text("[data-balance]")
    assert "осталось из 3\u00a0000\u00a0₽" in page.inner_text("[data-balance]")
    assert page.inner_text("[data-valid-until]").startswith("Действует до ")
    assert page.inner_text("[data-code]") == cert["code_display"]
    assert page.locator("svg").count() >= 1
    assert "С днём рождения!" in page.content()
    page.goto(path + "?lang=en")
    assert page.inner_text("[data-valid-until]").startswith("Valid until ")
    shop.post(f"/api/v1/certificates/{cert['code']}/void", {"reason": "lost"}, role="manager")
    page.goto(path)
    assert page.locator("[data-status=void]").count() == 1 and page.locator("[data-code]").count() == 0
    r = httpx.get(live_server.url + "/g/not-a-token")
    assert r.status_code == 404 and r.headers["referrer-policy"] == "no-referrer"


def test_printable_pdf(shop: Shop, client) -> None:
    cert = _sell(shop)
    r = client.get(cert["pdf_url"].replace("http://testserver", ""))
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert r.content.startswith(b"%PDF") and r.headers["cache-control"] == "private, no-store"
    # An A6 sheet (105 x 148 mm = 297.6 x 419.5 pt).
    box = re.search(rb"/MediaBox \[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", r.content)
    assert box is not None
    assert abs(float(box.group(1)) - 297.6) < 2 and abs(float(box.group(2)) - 419.5) < 2
