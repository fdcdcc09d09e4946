"""Fifty spends of one certificate at once through a real server (SQLite and PostgreSQL):
the balance never goes below zero, every success saw its own balance, the ledger holds."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx

from loyalwallet import db
from loyalwallet.certificates.ledger import check_ledger
from support import Shop

N = 50


def _fire(url: str, key: str, requests: list[tuple[str, dict]]) -> list[httpx.Response]:
    barrier = threading.Barrier(len(requests))

    def one(i: int) -> httpx.Response:
        path, body = requests[i]
        with httpx.Client(base_url=url, timeout=120) as c:
            barrier.wait()
            return c.post(
                path, json=body, headers={"Authorization": f"Bearer {key}", "Idempotency-Key": f"c-{i}"}
            )

    with ThreadPoolExecutor(len(requests)) as pool:
        return list(pool.map(one, range(len(requests))))


def test_fifty_concurrent_spends_never_go_below_zero(shop: Shop, live_server) -> None:
    cert = shop.post("/api/v1/certificates", {"amount": 10_000}).json()
    code = shop.card(shop.program("bonus"))["code"]
    # Half spend without a card, half inside purchases on a card: both lock the certificate.
    requests = [
        (f"/api/v1/certificates/{cert['code']}/redemptions", {"amount": 700})
        if i % 2
        else (
            "/api/v1/purchases",
            {"card": code, "amount": 700, "certificate": cert["code"], "certificate_amount": 700},
        )
        for i in range(N)
    ]
    # Warm the API-key cache first: on SQLite, 50 first uses of a key at once race on the
    # key's last_used_at UPDATE inside a read transaction ("database is locked"; a known
    # problem of merchants.service.actor_for_api_key, not of the certificate path).
    shop.get(f"/api/v1/certificates/{cert['code']}", role="cashier")
    results = _fire(live_server.url, shop.keys["cashier"], requests)
    ok = [r for r in results if r.status_code == 201]
    refused = [r for r in results if r.status_code != 201]
    assert len(ok) == 10_000 // 700
    assert {r.json()["code"] for r in refused} == {"certificate_insufficient"}
    left = shop.get(f"/api/v1/certificates/{cert['code']}").json()["balance"]
    assert left == 10_000 - 700 * len(ok) >= 0
    balances = sorted(r.json()["certificate"]["balance"] for r in ok)
    assert balances == sorted(set(balances))
    with db.read() as session:
        assert check_ledger(session) == []
