"""Several stamp kinds on one card over HTTP (issue 18): quote, purchase and refund
answer per kind, rewards are per kind, a refund takes back per kind, `check-ledger`
checks each kind, and single-kind programmes answer exactly as before."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from sqlalchemy import update

from loyalwallet import db
from loyalwallet.cards.models import Card
from loyalwallet.cards.sweeps import check_ledger
from loyalwallet.config import Settings
from support import Shop

COFFEE_PASTRY: dict[str, Any] = {
    "stamps_required": 3,
    "kind_name": "Coffee",
    "qualifying": {"categories": ["coffee"]},
    "reward": {"kind": "free_item", "name": "Free coffee", "category": "coffee"},
    "kinds": [
        {
            "name": "Pastry",
            "stamps_required": 5,
            "qualifying": {"categories": ["pastry"]},
            "reward": {"kind": "free_item", "name": "Free pastry", "category": "pastry"},
        }
    ],
}
LATTE = {"sku": "LATTE", "name": "Latte", "category": "coffee", "qty": 1, "price": 20_000}
MUFFIN = {"sku": "MUFFIN", "name": "Muffin", "category": "pastry", "qty": 1, "price": 10_000}


def kinds(answer: dict[str, Any]) -> dict[str, tuple[int, int]]:
    return {k["name"]: (k["stamps_added"], k["stamps"]) for k in answer["stamp_kinds"]}


def held(card: dict[str, Any]) -> dict[str, int]:
    return {k["name"]: k["stamps"] for k in card["stamp_kinds"]}


def ledger_problems(shop: Shop) -> list[dict[str, Any]]:
    with db.read() as session:
        return [p for p in check_ledger(session) if p["merchant_id"] == shop.merchant_id]


def test_each_kind_from_the_check_lines(shop: Shop) -> None:
    pid = shop.program("stamp", COFFEE_PASTRY)
    program = shop.get(f"/api/v1/programs/{pid}").json()
    assert program["rules"]["kinds"][0]["name"] == "Pastry" and program["rules"]["kind_name"] == "Coffee"
    code = shop.card(pid)["code"]
    items = [LATTE, {**MUFFIN, "qty": 3}]
    quote = shop.post(
        "/api/v1/purchases/quote", {"card": code, "amount": 50_000, "items": items}, role="cashier"
    )
    assert quote.status_code == 200, quote.text
    assert kinds(quote.json()) == {"Coffee": (1, 1), "Pastry": (3, 3)}
    assert held(quote.json()["card"]) == {"Coffee": 0, "Pastry": 0}  # the quote wrote nothing

    p = shop.buy(code, 50_000, items=items)
    assert p["stamps_added"] == 1 and kinds(p) == {"Coffee": (1, 1), "Pastry": (3, 3)}
    assert held(p["card"]) == {"Coffee": 1, "Pastry": 3} and p["card"]["stamps"] == 1

    # Two more muffins fill the pastry card (5 = four paid, the fifth free: 4 cells).
    p2 = shop.buy(code, 20_000, items=[{**MUFFIN, "qty": 2}])
    assert kinds(p2) == {"Coffee": (0, 1), "Pastry": (2, 1)} and p2["rewards_issued"] == 1
    [reward] = p2["card"]["rewards"]
    assert reward["name"] == "Free pastry"
    assert held(p2["card"]) == {"Coffee": 1, "Pastry": 1}
    entries = shop.get(f"/api/v1/cards/{code}/transactions").json()["items"]
    assert {e.get("stamp_kind", 1) for e in entries if e["type"] == "stamps"} == {1, 2}
    assert ledger_problems(shop) == []

    # Refunding the second purchase takes its pastry stamps back: the unused pastry
    # reward is revoked first, its stamps come back, then the share comes off.
    r = shop.post(f"/api/v1/purchases/{p2['id']}/refunds", {}, role="cashier")
    assert r.status_code == 201, r.text
    assert r.json()["stamp_kinds"] == [{"kind": 1, "stamps_reversed": 0}, {"kind": 2, "stamps_reversed": 2}]
    card = r.json()["card"]
    assert held(card) == {"Coffee": 1, "Pastry": 3} and card["rewards"] == []
    assert ledger_problems(shop) == []

    # A partial refund of the first purchase (the latte's line value) takes back in proportion.
    r = shop.post(f"/api/v1/purchases/{p['id']}/refunds", {"amount": 25_000}, role="cashier")
    assert r.status_code == 201, r.text
    assert r.json()["stamp_kinds"] == [{"kind": 1, "stamps_reversed": 0}, {"kind": 2, "stamps_reversed": 1}]
    r = shop.post(f"/api/v1/purchases/{p['id']}/refunds", {}, role="cashier")
    assert r.json()["stamp_kinds"] == [{"kind": 1, "stamps_reversed": 1}, {"kind": 2, "stamps_reversed": 2}]
    assert held(r.json()["card"]) == {"Coffee": 0, "Pastry": 0}
    view = shop.get(f"/api/v1/purchases/{p['id']}").json()
    assert view["stamp_kinds"] == [{"kind": 2, "stamps_added": 3, "stamps_reversed": 3}]
    assert ledger_problems(shop) == []


def test_single_kind_answers_are_unchanged(shop: Shop) -> None:
    pid = shop.program("stamp", {"stamps_required": 3})
    assert set(shop.get(f"/api/v1/programs/{pid}").json()["rules"]).isdisjoint({"kinds", "kind_name"})
    code = shop.card(pid)["code"]
    p = shop.buy(code, 10_000)
    assert "stamp_kinds" not in p and "stamp_kinds" not in p["card"] and p["card"]["stamps"] == 1
    r = shop.post(f"/api/v1/purchases/{p['id']}/refunds", {}, role="cashier").json()
    assert "stamp_kinds" not in r and r["stamps_reversed"] == 1
    assert "stamp_kinds" not in shop.get(f"/api/v1/purchases/{p['id']}").json()
    entries = shop.get(f"/api/v1/cards/{code}/transactions").json()["items"]
    assert all("stamp_kind" not in e for e in entries)


def test_check_ledger_sees_a_broken_kind(shop: Shop, settings: Settings) -> None:
    code = shop.card(shop.program("stamp", COFFEE_PASTRY))["code"]
    shop.buy(code, 10_000, items=[MUFFIN])
    with db.transaction() as session:
        session.execute(
            update(Card)
            .where(Card.code == code, Card.merchant_id == shop.merchant_id)
            .values(kind_stamps={"2": 5})
        )
    env = {
        **os.environ,
        "LOYALWALLET_DATABASE_URL": settings.database_url,
        "LOYALWALLET_DATA_DIR": str(settings.data_dir),
    }
    try:
        [problem] = ledger_problems(shop)
        assert problem["code"] == code and problem["problems"] == ["stamps of kind 2 5 != entries 1"]
        out = subprocess.run(
            [sys.executable, "-m", "loyalwallet.cli", "check-ledger"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 1 and "stamps of kind 2 5 != entries 1" in out.stdout
    finally:
        with db.transaction() as session:
            session.execute(
                update(Card)
                .where(Card.code == code, Card.merchant_id == shop.merchant_id)
                .values(kind_stamps={"2": 1})
            )
    assert ledger_problems(shop) == []


def test_several_kinds_go_through_the_general_path(shop: Shop, is_pg: bool) -> None:
    """checkout/fast.py never answers for a card with several stamp kinds."""
    from loyalwallet.checkout import fast

    code = shop.card(shop.program("stamp", COFFEE_PASTRY))["code"]
    shop.buy(code, 10_000, items=[MUFFIN])  # caches
    before = dict(fast.SERVED)
    p = shop.buy(code, 10_000, key="k-multi", items=[MUFFIN])
    assert kinds(p)["Pastry"] == (1, 2)
    if is_pg and fast.enabled():
        assert fast.SERVED["fast"] == before["fast"] and fast.SERVED["general"] == before["general"] + 1


def test_stamps_counted_by_hand_per_kind(shop: Shop) -> None:
    """A check without lines: the cashier says how many of each kind."""
    code = shop.card(shop.program("stamp", COFFEE_PASTRY))["code"]
    plain = shop.buy(code, 30_000)  # no lines: the kinds with an item filter get nothing
    assert kinds(plain) == {"Coffee": (0, 0), "Pastry": (0, 0)}
    p = shop.buy(code, 30_000, stamps_by_kind=[{"kind": 1, "stamps": 1}, {"kind": 2, "stamps": 2}])
    assert kinds(p) == {"Coffee": (1, 1), "Pastry": (2, 2)}
    for bad in ([{"kind": 3, "stamps": 1}], [{"kind": 2, "stamps": 1}, {"kind": 2, "stamps": 1}]):
        r = shop.post(
            "/api/v1/purchases", {"card": code, "amount": 100, "stamps_by_kind": bad}, role="cashier"
        )
        assert r.status_code == 422 and r.json()["code"] == "validation_error", r.text
    assert held(shop.get(f"/api/v1/cards/{code}").json()) == {"Coffee": 1, "Pastry": 2}
    bonus = shop.card(shop.program("bonus"))["code"]
    r = shop.post(
        "/api/v1/purchases",
        {"card": bonus, "amount": 100, "stamps_by_kind": [{"kind": 1, "stamps": 1}]},
        role="cashier",
    )
    assert r.status_code == 422 and r.json()["code"] == "validation_error"


def test_manager_corrects_one_kind(shop: Shop) -> None:
    code = shop.card(shop.program("stamp", COFFEE_PASTRY))["code"]
    r = shop.post(
        f"/api/v1/cards/{code}/adjustments",
        {"stamps": 2, "stamp_kind": 2, "reason": "paper card"},
        role="manager",
    )
    assert r.status_code == 201, r.text
    assert held(r.json()["card"]) == {"Coffee": 0, "Pastry": 2}
    r = shop.post(
        f"/api/v1/cards/{code}/adjustments",
        {"stamps": -3, "stamp_kind": 2, "reason": "too many"},
        role="manager",
    )
    assert r.status_code == 422 and r.json()["code"] == "validation_error"
    r = shop.post(
        f"/api/v1/cards/{code}/adjustments",
        {"stamps": 1, "stamp_kind": 4, "reason": "no such"},
        role="manager",
    )
    assert r.status_code == 422
    assert ledger_problems(shop) == []
