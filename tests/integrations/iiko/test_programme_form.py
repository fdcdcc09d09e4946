"""An owner makes an iiko programme from the admin's new-programme form (headless
Chromium): offered only once iiko is connected, its tiers come from the connection's
category mapping, and saving the programme page keeps them."""

from __future__ import annotations

from typing import Any

import pytest

from fakes.iiko import FakeIiko
from integrations.iiko.conftest import FIRST, LAST, LOGIN
from loyalwallet import db
from loyalwallet.integrations.iiko import service
from staff_support import add_staff, login
from support import Shop


def _connect(shop: Shop) -> None:
    with db.transaction() as session:
        service.connect(
            session,
            shop.merchant_id,
            LOGIN,
            card_first=FIRST,
            card_last=LAST,
            tiers={"Стандарт": "Base", "Золото": "Gold"},
        )


def test_without_a_connection_iiko_is_explained_and_refused(app: Any, shop: Shop, iiko: FakeIiko) -> None:
    owner = login(app, add_staff(shop, "owner"))
    page = owner.get("/admin/programs").text
    assert 'id="np-kind-iiko"' in page and "np-iiko-off" in page
    r = owner.get("/admin/programs/new?kind=iiko", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/admin/programs")
    csrf = owner.get("/admin/programs/new?kind=bonus").text.split('name="csrf" value="')[1].split('"')[0]
    r = owner.post("/admin/programs", data={"csrf": csrf, "kind": "iiko", "name": "Бонусы iiko"})
    assert r.status_code in (303, 409, 422)
    assert all(p["kind"] != "iiko" for p in shop.get("/api/v1/programs").json()["items"])


def test_saving_an_iiko_programme_page_keeps_its_tiers(app: Any, shop: Shop, iiko: FakeIiko) -> None:
    """The bug: the rules form of an iiko programme had no tier inputs, so a save replaced
    the tiers (which iiko's categories map to) with the default single "Guest"."""
    _connect(shop)
    program = shop.post(
        "/api/v1/programs",
        {"kind": "iiko", "name": "iiko", "rules": {"tiers": [{"name": "Base"}, {"name": "Gold"}]}},
    ).json()["id"]
    owner = login(app, add_staff(shop, "owner"))
    page = owner.get(f"/admin/programs/{program}").text
    csrf = page.split('name="csrf" value="')[1].split('"')[0]
    r = owner.post(
        f"/admin/programs/{program}",
        data={"csrf": csrf, "name": "Бонусы", "status": "active"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[:300]
    got = shop.get(f"/api/v1/programs/{program}").json()
    assert got["name"] == "Бонусы"
    assert [t["name"] for t in got["rules"]["tiers"]] == ["Base", "Gold"]


@pytest.mark.browser
def test_owner_creates_an_iiko_programme_in_the_browser(
    page: Any, live_server: Any, shop: Shop, iiko: FakeIiko
) -> None:
    owner = add_staff(shop, "owner")
    page.goto(f"{live_server.url}/login?next=/admin/programs")
    page.fill("#login", owner.login)
    page.fill("#password", owner.password)
    page.click("button[type=submit]")
    page.wait_for_url("**/admin/programs")
    assert page.is_disabled("#np-kind-iiko")  # not connected yet: offered, explained, disabled
    assert page.locator("#np-iiko-off a[href='/admin/iiko']").count() == 1

    _connect(shop)
    page.reload()
    assert page.is_enabled("#np-kind-iiko")
    page.fill("#np-name", "Бонусы iiko")
    page.check("#np-kind-iiko")
    with page.expect_navigation():
        page.click("#np-continue")
    assert [t.strip() for t in page.locator(".iiko-tier").all_inner_texts()] == ["Base", "Gold"]
    with page.expect_navigation():
        page.click("#create-program")
    assert page.locator(".flash").is_visible()
    created = [p for p in shop.get("/api/v1/programs").json()["items"] if p["kind"] == "iiko"]
    assert len(created) == 1 and created[0]["name"] == "Бонусы iiko"
    program = created[0]["id"]
    assert [t["name"] for t in created[0]["rules"]["tiers"]] == ["Base", "Gold"]

    # The programme page: rename and save; the tiers iiko's categories map to stay.
    page.fill("#p-name", "Бонусы")
    with page.expect_navigation():
        page.click("#save-rules")
    assert page.locator(".flash").is_visible()
    got = shop.get(f"/api/v1/programs/{program}").json()
    assert got["name"] == "Бонусы"
    assert [t["name"] for t in got["rules"]["tiers"]] == ["Base", "Gold"]
    assert [t.strip() for t in page.locator(".iiko-tier").all_inner_texts()] == ["Base", "Gold"]
