"""Concurrent requests at one card through a real server: no double spend, no double accrual."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
from sqlalchemy import func, select

from loyalwallet import db
from loyalwallet.cards.sweeps import check_ledger
from loyalwallet.checkout.models import Purchase
from support import Shop

N = 50


def fire(url: str, key: str, bodies: list[dict], headers: list[dict]) -> list[httpx.Response]:
    barrier = threading.Barrier(len(bodies))

    def one(i: int) -> httpx.Response:
        with httpx.Client(base_url=url, timeout=60) as c:
            barrier.wait()
            return c.post(
                "/api/v1/purchases", json=bodies[i], headers={"Authorization": f"Bearer {key}", **headers[i]}
            )

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(one, range(len(bodies))))


def _redeem_fifty(shop: Shop, url: str, *, warm: bool) -> None:
    pid = shop.program(
        "bonus", {"tiers": [{"name": "A", "min_spend": 0, "cashback_pct": 0}], "max_redeem_pct": 50}
    )
    code = shop.card(pid)["code"]
    # Two lots (the first expires sooner): the redemptions take them FIFO.
    shop.post(f"/api/v1/cards/{code}/adjustments", {"points": 400, "reason": "test balance"}, role="manager")
    shop.post(f"/api/v1/cards/{code}/adjustments", {"points": 600, "reason": "test balance"}, role="manager")

    if warm:  # the server's caches filled (API key, fraud rules): the fast path takes them
        # (with the hourly alert off: past 5 purchases of a card in an hour it fires, and
        # the general path writes the alert)
        r = shop.call(
            "PUT", "/api/v1/fraud/rules", json={"max_purchases_per_hour": {"action": "off", "count": 5}}
        )
        assert r.status_code == 200, r.text
        fire(url, shop.keys["cashier"], [{"card": shop.card(pid)["code"], "amount": 100}], [{}])
    bodies = [{"card": code, "amount": 10_000, "redeem_points": 30} for _ in range(N)]
    headers = [{"Idempotency-Key": f"redeem-{i}"} for i in range(N)]
    results = fire(url, shop.keys["cashier"], bodies, headers)

    ok = [r for r in results if r.status_code == 201]
    refused = [r for r in results if r.status_code != 201]
    assert len(ok) == 1000 // 30
    assert {r.json()["code"] for r in refused} == {"insufficient_points"}
    card = shop.get(f"/api/v1/cards/{code}").json()
    assert card["balance"] == 1000 - 30 * len(ok) >= 0
    balances = sorted(r.json()["card"]["balance"] for r in ok)
    assert balances == sorted({b for b in balances})  # every success saw a distinct balance
    with db.read() as session:
        assert check_ledger(session) == []


def test_concurrent_redemptions_never_overspend(shop: Shop, live_server) -> None:
    _redeem_fifty(shop, live_server.url, warm=False)


def test_concurrent_redemptions_through_the_fast_path_never_overspend(shop: Shop, live_server) -> None:
    """The same once the caches are warm: on PostgreSQL the fast path (checkout/fast.py)
    takes the redemptions, the lots spent in its statements under the card's lock."""
    from loyalwallet.checkout import fast

    served = fast.SERVED["fast"]
    _redeem_fifty(shop, live_server.url, warm=True)
    if db.is_sqlite() is False:
        assert fast.SERVED["fast"] >= served + 1000 // 30, fast.FELL_BACK


def test_concurrent_retries_of_one_purchase_accrue_once(shop: Shop, live_server) -> None:
    pid = shop.program("bonus")
    code = shop.card(pid)["code"]
    bodies = [{"card": code, "amount": 100_000} for _ in range(20)]
    headers = [{"Idempotency-Key": "pos-42-check-7"} for _ in range(20)]
    results = fire(live_server.url, shop.keys["cashier"], bodies, headers)
    assert {r.status_code for r in results} == {201}
    assert len({r.json()["id"] for r in results}) == 1
    assert shop.get(f"/api/v1/cards/{code}").json()["balance"] == 50
    with db.read() as session:
        n = session.scalar(
            select(func.count()).select_from(Purchase).where(Purchase.merchant_id == shop.merchant_id)
        )
    assert n == 1


def test_concurrent_purchases_respect_a_blocking_hourly_limit(shop: Shop, live_server) -> None:
    """The hourly count comes with the card's lock; purchases that committed while this
    one waited for the lock still count (no stale count lets a sixth one through)."""
    r = shop.call(
        "PUT", "/api/v1/fraud/rules", json={"max_purchases_per_hour": {"action": "block", "count": 3}}
    )
    assert r.status_code == 200, r.text
    code = shop.card(shop.program("bonus"))["code"]
    shop.buy(code, 10_000)  # a visit within the hour: the count is needed from now on
    bodies = [{"card": code, "amount": 10_000} for _ in range(12)]
    headers = [{"Idempotency-Key": f"hourly-{i}"} for i in range(12)]
    results = fire(live_server.url, shop.keys["cashier"], bodies, headers)
    ok = [r for r in results if r.status_code == 201]
    refused = [r for r in results if r.status_code != 201]
    assert len(ok) == 2
    assert {r.json()["code"] for r in refused} == {"fraud_limit"}


def test_concurrent_retries_through_the_fast_path_accrue_once(shop: Shop, live_server) -> None:
    """The same, once the server's caches are warm: on PostgreSQL the purchase's fast
    path (checkout/fast.py) takes these; a retry waits on the key's claim and then gets
    the stored answer."""
    from loyalwallet.checkout import fast

    pid = shop.program("bonus")
    code = shop.card(pid)["code"]
    [warm] = fire(live_server.url, shop.keys["cashier"], [{"card": code, "amount": 10_000}], [{}])  # caches
    served = fast.SERVED["fast"]
    bodies = [{"card": code, "amount": 100_000} for _ in range(20)]
    headers = [{"Idempotency-Key": "pos-43-check-8"} for _ in range(20)]
    results = fire(live_server.url, shop.keys["cashier"], bodies, headers)
    assert {r.status_code for r in results} == {201}
    assert len({r.json()["id"] for r in results}) == 1
    assert len({r.content for r in results}) == 1  # the same answer, byte for byte
    assert shop.get(f"/api/v1/cards/{code}").json()["balance"] == warm.json()["card"]["balance"] + 50
    if db.is_sqlite() is False:
        assert fast.SERVED["fast"] == served + 1
    with db.read() as session:
        assert check_ledger(session) == []
