"""Helpers of the staff web app's tests: staff logins and a logged-in client."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient

from loyalwallet import db
from loyalwallet.merchants.service import create_staff
from support import Shop, random_phone

PASSWORD = "correct horse 42"
_counter = iter(range(10**6))


@dataclass
class StaffLogin:
    login: str
    password: str
    role: str
    staff_id: int


def add_staff(
    shop: Shop, role: str, locations: list[int] | None = None, phone_index: str | None = None
) -> StaffLogin:
    login = f"{role}{next(_counter)}-{random_phone()[-6:]}@m{shop.merchant_id}.test"
    with db.transaction() as session:
        staff = create_staff(
            session,
            shop.merchant_id,
            login,
            PASSWORD,
            role,
            name=role.title(),
            location_ids=locations,
            phone_index=phone_index,
        )
        return StaffLogin(login, PASSWORD, role, staff.id)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def login(app: Any, who: StaffLogin, password: str | None = None) -> TestClient:
    """A fresh client (its own cookie jar) logged in as `who`."""
    client = TestClient(app, raise_server_exceptions=False)
    page = client.get("/login")
    r = client.post(
        "/login",
        data={"login": who.login, "password": password or who.password, "csrf": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    return client


def page_csrf(client: TestClient, path: str = "/cashier") -> str:
    r = client.get(path)
    assert r.status_code == 200, r.text
    return csrf_of(r.text)
