"""The owner's r_keeper page: connect, the ExtDllHttp.ini lines shown once and working for a
fake r_keeper, a new secret, disconnect; closed to other roles."""

from __future__ import annotations

import re
from typing import Any

from fakes.rkeeper import FakeRkeeper
from staff_support import add_staff, csrf_of, login
from support import Shop

RULES = {"tiers": [{"name": "Base", "min_spend": 0, "cashback_pct": 5}], "max_redeem_pct": 50}


def _address(html: str) -> str:
    match = re.search(r"Address=http://testserver(\S+)", html)
    assert match, html[:2000]
    return match.group(1)


def test_only_the_owner_sees_the_rkeeper_page(app: Any, shop: Shop) -> None:
    manager = login(app, add_staff(shop, "manager"))
    assert manager.get("/admin/rkeeper").status_code == 403
    owner = login(app, add_staff(shop, "owner"))
    r = owner.get("/admin/rkeeper")
    assert r.status_code == 200 and 'id="rk-connect"' in r.text and 'id="rk-status"' not in r.text


def test_connect_new_secret_and_disconnect_from_the_page(app: Any, shop: Shop) -> None:
    program = shop.program("bonus", RULES, name="Бонусы кафе")
    owner = login(app, add_staff(shop, "owner"))
    page = owner.get("/admin/rkeeper")
    bad = owner.post(
        "/admin/rkeeper",
        data={"csrf": csrf_of(page.text), "program": str(program), "discounts": "Platinum=3"},
    )
    assert bad.status_code == 200 and 'id="rk-error"' in bad.text and 'id="rk-status"' not in bad.text
    r = owner.post(
        "/admin/rkeeper",
        data={"csrf": csrf_of(page.text), "program": str(program), "discounts": "Base=3", "bonuses": ""},
    )
    assert r.status_code == 200 and 'id="rk-ini"' in r.text and 'id="rk-status"' in r.text
    till = FakeRkeeper(shop.client, _address(r.text))
    card = shop.card(program)
    assert till.card_info(card["code"]).int("Discount") == 3

    again = owner.get("/admin/rkeeper")
    assert 'id="rk-ini"' not in again.text and _address(r.text).rsplit("/", 1)[-1] not in again.text
    rotated = owner.post("/admin/rkeeper/rotate", data={"csrf": csrf_of(again.text)})
    assert rotated.status_code == 200 and 'id="rk-ini"' in rotated.text
    assert till.card_info(card["code"]).attrs["ErrorCode"] == "unauthorized"  # the old address is dead
    till.address = _address(rotated.text)
    assert till.card_info(card["code"]).result == 0
    gone = owner.post(
        "/admin/rkeeper/disconnect", data={"csrf": csrf_of(rotated.text)}, follow_redirects=False
    )
    assert gone.status_code == 303
    assert till.card_info(card["code"]).attrs["ErrorCode"] == "unauthorized"
    assert till.invalid == []
