"""Security headers per page family, cookies Secure under https, and the pages still work
under the Content-Security-Policy in a real browser (no CSP violation in the console)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from loyalwallet import db
from loyalwallet.cards.models import Card
from loyalwallet.config import Settings
from staff_support import add_staff, login
from support import Shop


def _common(r: Any) -> str:
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"]
    return str(r.headers["content-security-policy"])


def _strict(r: Any) -> None:
    csp = _common(r)
    assert "script-src 'self';" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    assert "style-src 'self';" in csp  # no style attributes, no <style> blocks
    assert "frame-ancestors 'none'" in csp
    assert r.headers["x-frame-options"] == "DENY"


def test_staff_pages_login_and_api(client: TestClient, app: Any, shop: Shop) -> None:
    r = client.get("/login")
    _strict(r)
    assert r.headers["cache-control"] == "no-store"
    owner = login(app, add_staff(shop, "owner"))
    for path in ("/admin", "/admin/guests", "/cashier"):
        r = owner.get(path)
        assert r.status_code == 200, path
        _strict(r)
        assert r.headers["cache-control"] == "no-store", path
    r = shop.get("/api/v1/programs")
    _strict(r)
    assert r.headers["cache-control"] == "no-store"
    assert "strict-transport-security" not in r.headers  # http base URL


def test_docs_get_their_own_policy(client: TestClient) -> None:
    for path in ("/docs", "/redoc"):
        r = client.get(path)
        csp = _common(r)
        script_src = next(d for d in csp.split(";") if d.strip().startswith("script-src"))
        # The viewer's one inline script by its hash; nothing from outside, nothing else inline.
        assert "unsafe-inline" not in script_src and "https:" not in csp
        assert ("'sha256-" in script_src) == (path == "/docs")  # ReDoc has no inline script
        assert "frame-ancestors 'none'" in csp


def test_join_pages_may_be_framed_by_the_widget(client: TestClient, shop: Shop) -> None:
    pid = shop.program()
    r = client.get(f"/join/{pid}?embed=1")
    assert r.status_code == 200
    csp = _common(r)
    assert "frame-ancestors *" in csp and "x-frame-options" not in r.headers
    assert "script-src 'self';" in csp and "style-src 'self';" in csp


def test_https_base_url_gets_hsts_and_secure_cookies(settings: Settings, shop: Shop) -> None:
    from loyalwallet.api.app import create_app

    secure = Settings(**{**settings.__dict__, "base_url": "https://loyalty.example"})
    app = create_app(secure, run_worker=False)
    try:
        with TestClient(app, base_url="https://testserver") as c:
            r = c.get("/login")
            assert r.headers["strict-transport-security"].startswith("max-age=")
            cookies = r.headers.get_list("set-cookie")
            assert cookies and all("Secure" in ck for ck in cookies)
            r = c.get("/login?lang=ru")
            assert all("Secure" in ck for ck in r.headers.get_list("set-cookie"))
    finally:
        from loyalwallet.config import configure

        configure(settings)


@pytest.mark.browser
@pytest.mark.slow(seconds=20)
def test_pages_work_under_the_csp(browser: Any, live_server: Any, shop: Shop) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")  # CSP enforced
    page = context.new_page()
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    pid = shop.program()
    card = shop.card(pid, name="Анна")
    owner = add_staff(shop, "owner")
    page.goto(f"{live_server.url}/login")
    page.fill("#login", owner.login)
    page.fill("#password", owner.password)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert page.url.endswith("/admin")
    with db.read() as session:
        guest_id = session.scalar(select(Card.customer_id).where(Card.code == card["code"]))
    for path in (
        "/admin",
        f"/admin/programs/{pid}",
        f"/admin/programs/{pid}/design",
        "/admin/guests",
        f"/admin/guests/{guest_id}",
        "/admin/locations",
        "/admin/alerts",
        "/admin/campaigns",
        "/admin/coupons",
        f"/admin/programs/{pid}/invite",
        "/admin/wallets",
        "/admin/sms",
        "/admin/telegram-card",
        "/docs",
        "/redoc",
        "/cashier",
        f"/join/{pid}",
        "/" + card["web_card_url"].split("/", 3)[3],
    ):
        page.goto(live_server.url + path)
        page.wait_for_load_state("networkidle")
        assert page.url.startswith(live_server.url + path.split("?")[0]), path
        # The layout the classes give (once style attributes) is there.
        if path == "/docs":  # Swagger UI started by its inline script, allowed by hash
            page.wait_for_selector(".swagger-ui .info .title", timeout=30_000)
        if path == "/admin/locations":
            assert page.eval_on_selector("#new-location .grow-2", "e => getComputedStyle(e).flexGrow") == "2"
        if path == f"/admin/guests/{guest_id}":
            assert page.eval_on_selector("details.space-top-2", "e => getComputedStyle(e).marginTop") != "0px"
        if path.startswith(("/join/", "/c/")):  # the programme's colours, from /brand/....css
            brand = page.eval_on_selector(
                ".page", "e => getComputedStyle(e).getPropertyValue('--brand').trim()"
            )
            assert brand.lower() == "#3b2a20", (path, brand)
    page.goto(live_server.url + "/cashier")
    page.wait_for_selector("#cashier[data-ready='1']")
    context.close()
    assert violations == []


def test_brand_colours_come_as_a_stylesheet(client: TestClient) -> None:
    r = client.get("/brand/3b2a20-ffffff-f3d9b1.css")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/css")
    assert "--brand: #3b2a20;" in r.text and "immutable" in r.headers["cache-control"]
    for bad in ("3b2a20-ffffff", "3b2a20-ffffff-f3d9b1;}body{", "red-blue-green"):
        assert client.get(f"/brand/{bad}.css").status_code == 404, bad
