"""Wrong passwords from elsewhere lock a login for new devices and alert the owner, but a
device that signed in before (its signed device cookie) still gets in with the right
password: nobody who knows an owner's login can keep them out."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fakes.telegram import TOKEN, FakeTelegram
from loyalwallet.outbox import worker
from loyalwallet.web import sessions
from staff_support import add_staff, csrf_of
from support import Shop


@pytest.fixture
def tg(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTelegram]:
    fake = FakeTelegram().start()
    monkeypatch.setenv("LOYALWALLET_TELEGRAM_API_URL", fake.url)
    yield fake
    fake.stop()


def _try(client: TestClient, login_name: str, password: str) -> int:
    page = client.get("/login")
    r = client.post(
        "/login",
        data={"login": login_name, "password": password, "csrf": csrf_of(page.text)},
        follow_redirects=False,
    )
    return r.status_code


def _device(app: Any) -> TestClient:
    """A browser of its own (its own cookie jar)."""
    return TestClient(app, raise_server_exceptions=False)


def test_the_owners_known_device_gets_in_while_the_login_is_locked(app, shop: Shop, tg: FakeTelegram) -> None:
    r = shop.call("PUT", "/api/v1/alerts/telegram", json={"chat_id": "5550001", "bot_token": TOKEN})
    assert r.status_code == 200, r.text
    owner = add_staff(shop, "owner")
    laptop = _device(app)
    assert _try(laptop, owner.login, owner.password) == 303
    cookie = sessions.device_cookie_name(owner.login)
    assert laptop.cookies.get(cookie)
    laptop.cookies.delete(sessions.COOKIE)  # logged out; the device cookie stays

    attacker = _device(app)
    assert [_try(attacker, owner.login, "guess") for _ in range(5)] == [401] * 5
    # Locked for the attacker, right password or not, and for any other new device.
    assert _try(attacker, owner.login, owner.password) == 429
    assert _try(_device(app), owner.login, owner.password) == 429
    # The owner's laptop still gets in with the right password.
    assert _try(laptop, owner.login, owner.password) == 303
    assert laptop.get("/admin").status_code == 200
    # Still locked for new devices after the owner signed in.
    assert _try(attacker, owner.login, owner.password) == 429

    # A device cookie is bound to its login and cannot be forged.
    other = add_staff(shop, "manager")
    stolen = _device(app)
    stolen.cookies.set(cookie, "0123456789abcdef." + "0" * 32)
    assert _try(stolen, owner.login, owner.password) == 429
    moved = _device(app)
    moved.cookies.set(sessions.device_cookie_name(other.login), laptop.cookies.get(cookie))
    assert _try(moved, other.login, other.password) == 303  # not locked: it counts as a new device

    # The owner was told: one alert, counting every attempt, and one Telegram message.
    items = shop.get("/api/v1/alerts", role="manager").json()["items"]
    [alert] = [a for a in items if a["rule"] == "login_locked"]
    assert alert["count"] >= 4  # the locking attempt, then each refused one
    assert owner.login in alert["message"]
    worker.drain()
    [sent] = [m for m in tg.sent if owner.login in m["text"]]
    assert "<code>-</code>" not in sent["text"]  # no card line on a login alert


def test_a_known_device_has_its_own_limit(app, shop: Shop) -> None:
    cashier = add_staff(shop, "cashier")
    till = _device(app)
    assert _try(till, cashier.login, cashier.password) == 303
    till.cookies.delete(sessions.COOKIE)
    # A stolen till cookie does not give unlimited guesses.
    assert [_try(till, cashier.login, "guess") for _ in range(5)] == [401] * 5
    assert _try(till, cashier.login, cashier.password) == 429
    # ...and those wrong passwords on the known till did not lock out new devices.
    assert _try(_device(app), cashier.login, cashier.password) == 303
