"""What a new café meets at once: `/`, the favicon, offline API docs, locations, and the
join page of its very first programme."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from enrollment_support import join
from loyalwallet import db
from loyalwallet.merchants.models import Location
from staff_support import add_staff, login, page_csrf
from support import Shop, random_phone
from web.test_program_form_pages import fields


def test_root_sends_each_visitor_where_they_work(app, shop: Shop) -> None:
    anonymous = TestClient(app)
    r = anonymous.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    owner = login(app, add_staff(shop, "owner"))
    assert owner.get("/", follow_redirects=False).headers["location"] == "/admin"
    cashier = login(app, add_staff(shop, "cashier"))
    assert cashier.get("/", follow_redirects=False).headers["location"] == "/cashier"


def test_favicon_and_docs_assets_come_from_us(client: TestClient) -> None:
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/x-icon"
    assert icon.content[:4] == b"\x00\x00\x01\x00"  # an ICO file
    for path, asset in (
        ("/docs", "/docs-assets/swagger-ui-bundle.js"),
        ("/redoc", "/docs-assets/redoc.standalone.js"),
    ):
        page = client.get(path)
        assert page.status_code == 200 and asset in page.text
        assert "cdn." not in page.text and "fonts.googleapis" not in page.text
        script = client.get(asset)
        assert script.status_code == 200 and len(script.content) > 100_000
    assert client.get("/docs-assets/swagger-ui.css").status_code == 200
    assert client.get("/docs-assets/..%2Fcore.py").status_code == 404
    assert client.get("/docs-assets/core.py").status_code == 404


def _locations(shop: Shop, active: bool | None = None) -> int:
    with db.read() as session:
        stmt = select(func.count()).select_from(Location).where(Location.merchant_id == shop.merchant_id)
        if active is not None:
            stmt = stmt.where(Location.active.is_(active))
        return int(session.scalar(stmt) or 0)


def test_locations_added_once_edited_archived_restored(app, shop: Shop) -> None:
    owner = login(app, add_staff(shop, "owner"))
    before = _locations(shop)
    csrf = page_csrf(owner, "/admin/locations")
    form = {"csrf": csrf, "name": "Кофейня на Арбате", "address": "Арбат, 1"}
    for _ in range(2):  # a double click sends the form twice
        r = owner.post("/admin/locations", data=form, follow_redirects=False)
        assert r.status_code == 303
    assert _locations(shop) == before + 1
    other = owner.post(
        "/admin/locations",
        data={**form, "name": "кофейня на арбате ", "address": "Тверская, 2"},
        headers={"accept": "text/html", "referer": "http://testserver/admin/locations"},
    )
    assert "Место с таким названием уже есть" in other.text and _locations(shop) == before + 1
    with db.read() as session:
        loc = session.scalars(
            select(Location).where(
                Location.merchant_id == shop.merchant_id, Location.name == "Кофейня на Арбате"
            )
        ).one()
    page = owner.get("/admin/locations")
    assert f'action="/admin/locations/{loc.id}/archive"' in page.text
    owner.post(f"/admin/locations/{loc.id}", data={"csrf": csrf, "name": "Арбат", "address": "Арбат, 1"})
    owner.post(f"/admin/locations/{loc.id}/archive", data={"csrf": csrf})
    assert _locations(shop, active=False) == 1
    page = owner.get("/admin/locations")
    assert "Архив" in page.text and f'action="/admin/locations/{loc.id}/restore"' in page.text
    owner.post(f"/admin/locations/{loc.id}/restore", data={"csrf": csrf})
    with db.read() as session:
        again = session.get(Location, loc.id)
        assert again is not None and again.active and again.name == "Арбат"
    assert owner.post(f"/admin/locations/{loc.id}/explode", data={"csrf": csrf}).status_code == 404


def test_the_first_programme_of_a_new_merchant_has_a_join_page_at_once(app, shop: Shop) -> None:
    owner = login(app, add_staff(shop, "owner"))
    csrf = page_csrf(owner, "/admin/programs")
    starter = {"stamps_required": 6, "reward": {"kind": "free_item", "name": "Кофе в подарок"}}
    created = owner.post(
        "/admin/programs",
        data=fields("stamp", starter, csrf=csrf, kind="stamp", name="Кофе"),
        follow_redirects=False,
    )
    assert created.status_code == 303, created.text
    program_id = int(created.headers["location"].rsplit("/", 1)[1])
    guest = TestClient(app)
    page = guest.get(f"/join/{program_id}")
    assert page.status_code == 200, page.text
    assert 'name="phone"' in page.text and 'name="personal_data"' in page.text
    _done, card = join(guest, program_id, random_phone())
    assert guest.get(card).status_code == 200


@pytest.mark.browser
def test_api_docs_render_without_internet(page, live_server) -> None:
    """Every request that leaves our server is refused: Swagger UI and ReDoc still render."""
    outside: list[str] = []

    def only_ours(route) -> None:  # type: ignore[no-untyped-def]
        if route.request.url.startswith(live_server.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_ours)
    page.goto(f"{live_server.url}/docs")
    page.wait_for_selector(".swagger-ui .info .title", timeout=30_000)
    assert "loyalwallet" in page.inner_text(".swagger-ui .info .title")
    assert page.locator(".opblock").count() > 10  # the operations are listed
    page.goto(f"{live_server.url}/redoc")
    page.wait_for_selector("h1", timeout=30_000)
    assert "loyalwallet" in page.inner_text("h1")
    assert outside == []
    page.goto(f"{live_server.url}/")
    assert page.url.endswith("/login")
    icon = page.request.get(f"{live_server.url}/favicon.ico")
    assert icon.ok


def test_a_wrong_coordinate_is_explained_in_russian(app, shop: Shop) -> None:
    """A message with a value (an Explained template) reaches a Russian page in Russian,
    not as the English the API answers."""
    owner = login(app, add_staff(shop, "owner"))
    before = _locations(shop)
    csrf = page_csrf(owner, "/admin/locations")
    r = owner.post(
        "/admin/locations",
        data={"csrf": csrf, "name": "Точка на краю", "address": "Полюс", "latitude": "95"},
        headers={"accept": "text/html", "referer": "http://testserver/admin/locations"},
    )
    assert "latitude: от -90 до 90" in r.text, r.text
    assert "is between" not in r.text and _locations(shop) == before
