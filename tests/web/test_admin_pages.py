"""Admin pages through their forms: programs, guests, keys, staff, locations, deliveries."""

from __future__ import annotations

import json

from sqlalchemy import insert, select

from loyalwallet import db
from loyalwallet.db import utcnow
from loyalwallet.merchants.models import AuditLog, Location
from loyalwallet.outbox.models import OutboxMessage
from staff_support import add_staff, login, page_csrf
from support import Shop

HTML = {"accept": "text/html"}


def test_program_rules_form(app, shop: Shop) -> None:
    program = shop.program("bonus")
    owner = login(app, add_staff(shop, "owner"))
    csrf = page_csrf(owner, f"/admin/programs/{program}")
    bad = owner.post(f"/admin/programs/{program}", data={"csrf": csrf, "name": "X", "rules": '{"tiers": []}'})
    assert bad.status_code == 422 and "tiers" in bad.text
    rules = shop.get(f"/api/v1/programs/{program}").json()["rules"]
    rules["welcome_points"] = 77
    ok = owner.post(
        f"/admin/programs/{program}",
        data={"csrf": csrf, "name": "Renamed", "rules": json.dumps(rules), "status": "active"},
        follow_redirects=False,
    )
    assert ok.status_code == 303
    after = shop.get(f"/api/v1/programs/{program}").json()
    assert after["name"] == "Renamed" and after["rules"]["welcome_points"] == 77 and after["version"] == 2
    with db.read() as session:
        assert session.scalar(
            select(OutboxMessage.id).where(
                OutboxMessage.merchant_id == shop.merchant_id, OutboxMessage.topic == "program.changed"
            )
        )
    created = owner.post(
        "/admin/programs",
        data={"csrf": csrf, "name": "Stamps", "kind": "stamp", "rules": ""},
        follow_redirects=False,
    )
    assert created.status_code == 303 and created.headers["location"].startswith("/admin/programs/")


def test_guest_adjustment_needs_a_reason_and_is_audited(app, shop: Shop) -> None:
    program = shop.program("bonus")
    card = shop.card(program, name="Вера")
    with db.read() as session:
        from loyalwallet.cards.models import Card

        customer_id = session.scalar(select(Card.customer_id).where(Card.code == card["code"]))
    manager = login(app, add_staff(shop, "manager"))
    page = manager.get(f"/admin/guests/{customer_id}")
    assert page.status_code == 200 and "Вера" in page.text
    csrf = page_csrf(manager, f"/admin/guests/{customer_id}")
    no_reason = manager.post(
        f"/admin/guests/{customer_id}/adjust",
        data={"csrf": csrf, "card": card["code"], "points": "50", "reason": ""},
        headers={**HTML, "referer": f"http://testserver/admin/guests/{customer_id}"},
        follow_redirects=False,
    )
    assert no_reason.status_code == 303 and "lw_flash" in no_reason.headers.get("set-cookie", "")
    assert shop.get(f"/api/v1/cards/{card['code']}").json()["balance"] == 0
    r = manager.post(
        f"/admin/guests/{customer_id}/adjust",
        data={"csrf": csrf, "card": card["code"], "points": "50", "reason": "forgot a purchase"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert shop.get(f"/api/v1/cards/{card['code']}").json()["balance"] == 50
    with db.read() as session:
        entry = session.scalar(
            select(AuditLog).where(AuditLog.merchant_id == shop.merchant_id, AuditLog.action == "card.adjust")
        )
        assert (
            entry is not None
            and entry.actor_type == "staff"
            and entry.details["reason"] == "forgot a purchase"
        )
    found = manager.get("/admin/guests", params={"q": "вер"})
    assert f"/admin/guests/{customer_id}" in found.text


def test_api_key_shown_once_and_revoked(app, shop: Shop) -> None:
    owner = login(app, add_staff(shop, "owner"))
    csrf = page_csrf(owner, "/admin/api-keys")
    r = owner.post(
        "/admin/api-keys", data={"csrf": csrf, "name": "Till 2", "role": "cashier", "location_id": ""}
    )
    assert r.status_code == 201 and r.headers["cache-control"] == "no-store"
    key = r.text.split('id="new-key">')[1].split("<")[0]
    assert key.startswith("lw_")
    assert owner.get("/admin/api-keys").text.count(key) == 0
    assert shop.client.get("/api/v1/merchant", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    with db.read() as session:
        from loyalwallet.merchants.models import ApiKey

        key_id = session.scalar(
            select(ApiKey.id).where(ApiKey.merchant_id == shop.merchant_id, ApiKey.name == "Till 2")
        )
    owner.post(f"/admin/api-keys/{key_id}/revoke", data={"csrf": csrf})
    assert shop.client.get("/api/v1/merchant", headers={"Authorization": f"Bearer {key}"}).status_code == 401


def test_staff_and_locations(app, shop: Shop) -> None:
    owner = login(app, add_staff(shop, "owner"))
    csrf = page_csrf(owner, "/admin/locations")
    bad = owner.post(
        "/admin/locations",
        data={"csrf": csrf, "name": "North", "latitude": "95"},
        headers=HTML,
        follow_redirects=False,
    )
    assert bad.status_code == 303  # back to the form with the error
    owner.post(
        "/admin/locations",
        data={
            "csrf": csrf,
            "name": "North",
            "address": "Тверская, 1",
            "latitude": "55.76",
            "longitude": "37.61",
        },
    )
    with db.read() as session:
        north = session.scalar(
            select(Location).where(Location.merchant_id == shop.merchant_id, Location.name == "North")
        )
        assert north is not None and north.latitude == 55.76 and north.address == "Тверская, 1"
    r = owner.post(
        "/admin/staff",
        data={
            "csrf": csrf,
            "login": f"new-cashier-{shop.merchant_id}@x.test",
            "name": "Lena",
            "password": "secret-pass-1",
            "role": "cashier",
            "locations": [str(north.id)],
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    from staff_support import StaffLogin

    with db.read() as session:
        from loyalwallet.merchants.models import Staff

        staff_id = session.scalar(
            select(Staff.id).where(Staff.login == f"new-cashier-{shop.merchant_id}@x.test")
        )
    lena = login(
        app, StaffLogin(f"new-cashier-{shop.merchant_id}@x.test", "secret-pass-1", "cashier", staff_id)
    )
    assert lena.get("/cashier").status_code == 200
    owner.post(
        f"/admin/staff/{staff_id}", data={"csrf": csrf, "role": "cashier", "name": "Lena"}
    )  # unticked: disabled
    assert lena.get("/cashier", follow_redirects=False).status_code == 303


def test_failed_deliveries_retry(app, shop: Shop) -> None:
    with db.transaction() as session:
        msg_id = session.execute(
            insert(OutboxMessage)
            .values(
                merchant_id=shop.merchant_id,
                topic="webhook",
                payload={"name": "purchase.created"},
                status="dead",
                attempts=12,
                max_attempts=12,
                next_attempt_at=utcnow(),
                last_error="HTTP 500 from https://pos.example",
                created_at=utcnow(),
            )
            .returning(OutboxMessage.id)
        ).scalar_one()
    manager = login(app, add_staff(shop, "manager"))
    page = manager.get("/admin/deliveries")
    assert "HTTP 500 from https://pos.example" in page.text
    csrf = page_csrf(manager, "/admin/deliveries")
    manager.post(f"/admin/deliveries/{msg_id}/retry", data={"csrf": csrf})
    with db.read() as session:
        row = session.get(OutboxMessage, msg_id)
        assert row is not None and (row.status, row.attempts) == ("pending", 0)


def test_csv_exports(app, shop: Shop) -> None:
    program = shop.program("bonus")
    code = shop.card(program, name="Глеб", phone="+79165550303")["code"]
    shop.buy(code, 12_345)
    manager = login(app, add_staff(shop, "manager"))
    guests = manager.get("/admin/export/guests.csv")
    assert guests.status_code == 200 and guests.headers["content-type"].startswith("text/csv")
    assert "Глеб" in guests.text and "+79165550303" in guests.text
    purchases = manager.get("/admin/export/purchases.csv")
    assert code in purchases.text and "123.45" in purchases.text
    cashier = login(app, add_staff(shop, "cashier"))
    assert cashier.get("/admin/export/guests.csv").status_code == 403
