"""Twenty uses of one subscription at once through a real server (SQLite and PostgreSQL),
half inside purchases, half at the cashier page's endpoint: units never go below zero,
the daily limit is never passed, the ledger holds."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx

from loyalwallet import db
from loyalwallet.subscriptions.ledger import check_ledger
from support import Shop

N = 20


def _fire(url: str, key: str, requests: list[tuple[str, dict]]) -> list[httpx.Response]:
    barrier = threading.Barrier(len(requests))

    def one(i: int) -> httpx.Response:
        path, body = requests[i]
        with httpx.Client(base_url=url, timeout=120) as c:
            barrier.wait()
            return c.post(path, json=body, headers={"Authorization": f"Bearer {key}"})

    with ThreadPoolExecutor(len(requests)) as pool:
        return list(pool.map(one, range(len(requests))))


def _uses(shop: Shop, code: str, sub_id: int) -> list[tuple[str, dict]]:
    line = {"sku": "CUP", "price": 20_000}
    return [
        (f"/api/v1/subscriptions/{sub_id}/uses", {})
        if i % 2
        else ("/api/v1/purchases", {"card": code, "amount": 20_000, "items": [line], "subscription": sub_id})
        for i in range(N)
    ]


def test_twenty_concurrent_uses_never_go_below_zero_nor_past_the_daily_limit(shop: Shop, live_server) -> None:
    pid = shop.program("bonus")
    few = shop.post(
        "/api/v1/subscription-plans",
        {"name": "15 cups", "units": 15, "period_days": 30, "price": 1},
        role="manager",
    ).json()
    daily = shop.post(
        "/api/v1/subscription-plans",
        {"name": "3 a day", "units": 100, "period_days": 30, "daily_limit": 3, "price": 1},
        role="manager",
    ).json()
    code = shop.card(pid)["code"]
    a = shop.post("/api/v1/subscriptions", {"plan_id": few["id"], "card": code}, role="cashier").json()
    b = shop.post("/api/v1/subscriptions", {"plan_id": daily["id"], "card": code}, role="cashier").json()
    shop.get(f"/api/v1/subscriptions/{a['id']}", role="cashier")  # the API-key cache is warm
    for sub, allowed, refusal in ((a, 15, "subscription_used_up"), (b, 3, "subscription_daily_limit")):
        results = _fire(live_server.url, shop.keys["cashier"], _uses(shop, code, sub["id"]))
        ok = [r for r in results if r.status_code == 201]
        refused = [r for r in results if r.status_code != 201]
        assert len(ok) == allowed, [r.text for r in refused]
        assert {r.json()["code"] for r in refused} == {refusal}
        now = shop.get(f"/api/v1/subscriptions/{sub['id']}").json()
        assert now["units_left"] == sub["units_left"] - allowed >= 0
        # Every success saw its own figure: no two answers show the same units left.
        lefts = sorted(r.json()["subscription"]["units_left"] for r in ok)
        assert lefts == sorted(set(lefts))
    with db.read() as session:
        assert check_ledger(session) == []
