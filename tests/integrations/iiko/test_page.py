"""The owner's iiko page: in headless Chromium, and closed to other roles."""

from __future__ import annotations

from typing import Any

import pytest

from fakes.iiko import FakeIiko
from integrations.iiko.conftest import LOGIN
from staff_support import add_staff, login
from support import Shop


def test_only_the_owner_sees_the_iiko_page(app: Any, shop: Shop, iiko: FakeIiko) -> None:
    manager = login(app, add_staff(shop, "manager"))
    assert manager.get("/admin/iiko").status_code == 403
    owner = login(app, add_staff(shop, "owner"))
    r = owner.get("/admin/iiko")
    assert r.status_code == 200 and 'id="iiko-connect"' in r.text


@pytest.mark.browser
def test_connect_and_test_iiko_in_the_browser(
    page: Any, live_server: Any, shop: Shop, iiko: FakeIiko
) -> None:
    owner = add_staff(shop, "owner")
    page.goto(f"{live_server.url}/login?next=/admin/iiko")
    page.fill("#login", owner.login)
    page.fill("#password", owner.password)
    page.click("button[type=submit]")
    page.wait_for_url("**/admin/iiko")
    page.fill("#i-login", "wrong-login")
    page.fill("#i-first", "7700000001")
    page.fill("#i-last", "7700000999")
    page.click("#iiko-connect button[type=submit]")
    assert "iiko does not accept this API login" in page.locator("#iiko-error").inner_text()
    assert page.locator("#iiko-status").count() == 0  # nothing stored
    page.fill("#i-login", LOGIN)
    page.fill("#i-first", "7700000001")
    page.fill("#i-last", "7700000999")
    page.fill("#i-tiers", "Золото=Gold")
    page.click("#iiko-connect button[type=submit]")
    page.wait_for_selector("#iiko-status")
    assert page.locator("#iiko-state").inner_text() == "ok"
    assert iiko.org_name in page.locator("#iiko-status").inner_text()
    page.click("#iiko-test")
    page.wait_for_selector("#iiko-answer")
    answer = page.locator("#iiko-answer").inner_text()
    assert iiko.org_id in answer and "Золото" in answer  # iiko's real answer
    assert LOGIN not in page.content()  # the login is never shown back


def test_the_programmes_pages_show_an_iiko_programme(app: Any, shop: Shop, iiko: FakeIiko) -> None:
    program = shop.post("/api/v1/programs", {"kind": "iiko", "name": "Бонусы iiko", "rules": {}}).json()
    owner = login(app, add_staff(shop, "owner"))
    assert owner.get("/admin/programs").status_code == 200
    r = owner.get(f"/admin/programs/{program['id']}")
    assert r.status_code == 200, r.text[:500]
    assert owner.get("/admin/programs/new?kind=iiko", follow_redirects=False).status_code in (200, 303)
