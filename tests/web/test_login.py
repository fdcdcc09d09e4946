"""Staff login: sessions, CSRF, rate limiting, roles, and merchant scoping."""

from __future__ import annotations

from fastapi.testclient import TestClient

from loyalwallet import db
from loyalwallet.web.models import WebSession
from staff_support import add_staff, csrf_of, login, page_csrf
from support import Shop, new_shop


def _try(client: TestClient, login_name: str, password: str) -> int:
    page = client.get("/login")
    r = client.post(
        "/login",
        data={"login": login_name, "password": password, "csrf": csrf_of(page.text)},
        follow_redirects=False,
    )
    return r.status_code


def test_login_and_logout(app, shop: Shop) -> None:
    owner = add_staff(shop, "owner")
    anonymous = TestClient(app)
    r = anonymous.get("/admin/guests", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
    client = login(app, owner)
    assert client.get("/admin").status_code == 200
    csrf = page_csrf(client, "/admin/guests")
    # Without the CSRF token a form post is refused and the session survives.
    assert (
        client.post("/logout", data={}, headers={"accept": "text/html"}, follow_redirects=False).status_code
        == 303
    )
    assert client.get("/admin", follow_redirects=False).status_code == 200
    r = client.post("/logout", data={"csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303
    assert client.get("/admin", follow_redirects=False).status_code == 303
    with db.read() as session:
        assert session.query(WebSession).filter_by(staff_id=owner.staff_id).count() == 0


def test_login_form_needs_its_csrf_cookie(app, shop: Shop) -> None:
    owner = add_staff(shop, "owner")
    client = TestClient(app)
    r = client.post("/login", data={"login": owner.login, "password": owner.password, "csrf": "forged"})
    assert r.status_code == 403


def test_wrong_password_is_rate_limited(app, shop: Shop) -> None:
    cashier = add_staff(shop, "cashier")
    client = TestClient(app)
    assert [_try(client, cashier.login, "wrong password") for _ in range(5)] == [401] * 5
    # Locked: even the right password is not checked now.
    assert _try(client, cashier.login, "wrong password") == 429
    assert _try(client, cashier.login, cashier.password) == 429
    # Another login from the same address is not locked by this one.
    other = add_staff(shop, "cashier")
    assert _try(client, other.login, other.password) == 303


def test_unknown_login_looks_like_a_wrong_password(app) -> None:
    assert _try(TestClient(app), "nobody@nowhere.test", "whatever123") == 401


def test_roles_cashier_gets_403_on_admin_pages(app, shop: Shop) -> None:
    cashier = add_staff(shop, "cashier", [shop.location_id])
    client = login(app, cashier)
    assert client.get("/cashier").status_code == 200
    for path in ("/admin", "/admin/guests", "/admin/programs", "/admin/staff"):
        r = client.get(path)
        assert r.status_code == 403, path
        assert "text/html" in r.headers["content-type"]
    manager = login(app, add_staff(shop, "manager"))
    assert manager.get("/admin/guests").status_code == 200
    assert manager.get("/admin/staff").status_code == 403
    assert manager.get("/admin/api-keys").status_code == 403


def test_manager_of_a_cannot_reach_merchant_b(app, client, shop: Shop) -> None:
    other = new_shop(client, "Other café")
    program = other.program("bonus")
    card = other.card(program, name="Секрет")
    with db.read() as session:
        from loyalwallet.cards.models import Card

        customer_id = session.query(Card).filter_by(code=card["code"]).one().customer_id
    manager = login(app, add_staff(shop, "manager"))
    assert manager.get(f"/admin/programs/{program}").status_code == 404
    assert manager.get(f"/admin/programs/{program}/design").status_code == 404
    assert manager.get(f"/admin/guests/{customer_id}").status_code == 404
    assert manager.get(f"/api/v1/cards/{card['code']}").status_code == 404
    assert f"/admin/guests/{customer_id}" not in manager.get("/admin/guests?q=Секрет").text
    csrf = page_csrf(manager, "/admin/guests")
    r = manager.post(
        f"/admin/guests/{customer_id}/adjust",
        data={"csrf": csrf, "card": card["code"], "points": "100", "reason": "steal"},
    )
    assert r.status_code == 404
    assert other.get(f"/api/v1/cards/{card['code']}").json()["balance"] == 0


def test_session_cookie_calls_the_api_with_csrf_header(app, shop: Shop) -> None:
    program = shop.program("bonus")
    code = shop.card(program)["code"]
    client = login(app, add_staff(shop, "cashier", [shop.location_id]))
    csrf = page_csrf(client)
    assert client.get(f"/api/v1/cards/{code}").status_code == 200
    body = {"card": code, "amount": 10_000}
    r = client.post("/api/v1/purchases", json=body)
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    assert client.get(f"/api/v1/cards/{code}").json()["visits"] == 0
    r = client.post(
        "/api/v1/purchases", json=body, headers={"X-CSRF-Token": csrf, "Idempotency-Key": "web-1"}
    )
    assert r.status_code == 201, r.text
    again = client.post(
        "/api/v1/purchases", json=body, headers={"X-CSRF-Token": csrf, "Idempotency-Key": "web-1"}
    )
    assert again.status_code == 201 and again.json()["id"] == r.json()["id"]
    assert client.get(f"/api/v1/cards/{code}").json()["visits"] == 1
    # The cashier's location is the session's: the purchase is recorded there.
    assert (
        r.json().get("card")
        and shop.get(f"/api/v1/purchases/{r.json()['id']}").json()["location_id"] == shop.location_id
    )


def test_cashier_cannot_serve_own_card(app, shop: Shop) -> None:
    from loyalwallet.customers.service import phone_index

    phone = "+79161112233"
    program = shop.program("bonus")
    code = shop.card(program, phone=phone)["code"]
    cashier = add_staff(shop, "cashier", [shop.location_id], phone_index=phone_index(shop.merchant_id, phone))
    client = login(app, cashier)
    csrf = page_csrf(client)
    r = client.post(
        "/api/v1/purchases",
        json={"card": code, "amount": 5000},
        headers={"X-CSRF-Token": csrf, "Idempotency-Key": "own"},
    )
    assert r.status_code == 429 and r.json()["code"] == "fraud_limit"


def test_language_per_user(app, shop: Shop) -> None:
    owner = add_staff(shop, "owner")
    client = login(app, owner)
    assert "Гости" in client.get("/admin/guests", headers={"accept-language": "ru"}).text
    csrf = page_csrf(client, "/admin/guests")
    client.post("/account/language", data={"csrf": csrf, "lang": "en", "next": "/admin/guests"})
    client.cookies.delete("lang")
    assert "Guests" in client.get("/admin/guests", headers={"accept-language": "ru"}).text
    assert "Гости" in client.get("/admin/guests?lang=ru").text
