"""The purchase fast path's optimistic shape (checkout/fast.py) when it loses a race:
between its statement 1 (no lock) and statement 2 another writer changes the card, or
claims the Idempotency-Key. Statement 2 then undoes itself and the locking shape answers:
from the card as it now is, nothing written twice. On PostgreSQL (the fast path's)."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select, text

from loyalwallet import db
from loyalwallet.cards.models import LedgerEntry
from loyalwallet.cards.sweeps import check_ledger
from loyalwallet.checkout import fast, idempotency
from loyalwallet.checkout.models import IdempotencyRecord, Purchase
from loyalwallet.checkout.schemas import PurchaseIn
from support import Shop

pytestmark = pytest.mark.skipif(
    not os.environ.get("LOYALWALLET_TEST_DATABASE_URL"), reason="the fast path runs on PostgreSQL only"
)


def _between_statements(monkeypatch: Any, meanwhile: Callable[[], None]) -> list[bool]:
    """Run `meanwhile` (another writer, committed) once, after the optimistic shape's
    statement 1 and rules and before its statement 2. Returns the shapes that ran."""
    real = fast._run
    shapes: list[bool] = []

    async def racing(*args: Any, locked: bool) -> Any:
        done = await real(*args, locked=locked)
        shapes.append(locked)
        if not locked and len(shapes) == 1:
            meanwhile()
        return done

    monkeypatch.setattr(fast, "_run", racing)
    return shapes


def _card_id(code: str) -> int:
    with db.read() as session:
        return int(session.scalar(text("SELECT id FROM cards WHERE code = :c"), {"c": code}))


def _purchases(card_id: int) -> int:
    with db.read() as session:
        return int(
            session.scalar(select(func.count()).select_from(Purchase).where(Purchase.card_id == card_id))
        )


def test_a_card_changed_between_the_statements_is_answered_from_the_card_as_it_now_is(
    shop: Shop, monkeypatch: Any
) -> None:
    pid = shop.program("bonus")
    plain, raced = shop.card(pid)["code"], shop.card(pid)["code"]
    accrual = shop.buy(plain, 35_000)["card"]["balance"]  # also fills the server's caches
    card_id = _card_id(raced)

    def adjust() -> None:  # another writer of the card: 100 points, as an adjustment writes them
        with db.transaction() as session:
            session.execute(text("UPDATE cards SET balance = balance + 100 WHERE id = :id"), {"id": card_id})
            session.add(
                LedgerEntry(
                    merchant_id=shop.merchant_id,
                    card_id=card_id,
                    kind="adjustment",
                    points=100,
                    remaining=100,
                    reason="test",
                    created_at=dt.datetime.now(dt.UTC),
                )
            )

    shapes = _between_statements(monkeypatch, adjust)
    before = dict(fast.SERVED)
    key = {"Idempotency-Key": "race-card"}
    r = shop.post("/api/v1/purchases", {"card": raced, "amount": 35_000}, role="cashier", headers=key)
    assert r.status_code == 201, r.text
    assert shapes == [False, True]  # the optimistic shape lost, the locking one answered
    assert fast.SERVED["lost_race"] == before["lost_race"] + 1
    assert fast.SERVED["fast"] == before["fast"] + 1
    # The locking shape read the card again: the adjustment is in its answer and stays.
    assert r.json()["card"]["balance"] == 100 + accrual
    assert shop.get(f"/api/v1/cards/{raced}").json()["balance"] == 100 + accrual
    assert _purchases(card_id) == 1
    again = shop.post("/api/v1/purchases", {"card": raced, "amount": 35_000}, role="cashier", headers=key)
    assert again.headers.get("Idempotent-Replayed") == "true" and again.json() == r.json()
    assert _purchases(card_id) == 1
    with db.read() as session:
        assert check_ledger(session) == []


def test_a_key_claimed_between_the_statements_writes_nothing_and_replays(
    shop: Shop, monkeypatch: Any
) -> None:
    pid = shop.program("bonus")
    code = shop.card(pid)["code"]
    shop.buy(shop.card(pid)["code"], 35_000)  # the server's caches
    card_id = _card_id(code)
    body = {"card": code, "amount": 35_000}
    stored = {"id": 424242, "note": "the answer of the request that claimed the key first"}

    def claim() -> None:  # a retry with the same key, committed first
        now = dt.datetime.now(dt.UTC)
        with db.transaction() as session:
            session.add(
                IdempotencyRecord(
                    merchant_id=shop.merchant_id,
                    scope="purchase",
                    key="race-key",
                    request_hash=idempotency.request_hash(PurchaseIn.model_validate(body).model_dump()),
                    status_code=201,
                    response=stored,
                    created_at=now,
                    expires_at=now + idempotency.ttl(),
                )
            )

    shapes = _between_statements(monkeypatch, claim)
    balance = shop.get(f"/api/v1/cards/{code}").json()["balance"]
    r = shop.post("/api/v1/purchases", body, role="cashier", headers={"Idempotency-Key": "race-key"})
    assert r.status_code == 201 and r.headers.get("Idempotent-Replayed") == "true"
    assert r.json() == stored
    assert shapes[0] is False and len(shapes) == 2
    # Statement 2 of the optimistic shape undid itself: no purchase, no points, one record.
    assert _purchases(card_id) == 0
    assert shop.get(f"/api/v1/cards/{code}").json()["balance"] == balance
    with db.read() as session:
        n = session.scalar(
            select(func.count())
            .select_from(IdempotencyRecord)
            .where(IdempotencyRecord.merchant_id == shop.merchant_id, IdempotencyRecord.key == "race-key")
        )
        assert n == 1
        assert check_ledger(session) == []


def test_the_fast_path_answer_carries_the_middleware_headers(shop: Shop) -> None:
    """The fast route sits behind the app's middleware: the same security headers and a
    request id as the general path's answer."""
    pid = shop.program("bonus")
    code = shop.card(pid)["code"]
    shop.buy(code, 1000)  # caches
    served = fast.SERVED["fast"]
    quick = shop.post("/api/v1/purchases", {"card": code, "amount": 1000}, role="cashier")
    assert fast.SERVED["fast"] == served + 1
    fast.ENABLED = False
    try:
        general = shop.post("/api/v1/purchases", {"card": code, "amount": 1000}, role="cashier")
    finally:
        fast.ENABLED = True
    assert quick.status_code == general.status_code == 201
    assert quick.headers["x-request-id"] and quick.headers["x-request-id"] != general.headers["x-request-id"]
    skip = {"x-request-id", "content-length", "date"}
    assert {k: v for k, v in quick.headers.items() if k not in skip} == {
        k: v for k, v in general.headers.items() if k not in skip
    }
