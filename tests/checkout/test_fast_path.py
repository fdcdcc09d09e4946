"""The purchase's fast path (checkout/fast.py) gives the same answers and writes the same
rows as the general path (checkout.service.purchase), on PostgreSQL.

Two merchants get the same programme, the same cards and the same purchases; one is
served with the fast path on, the other with it off. Their answers, ledger rows,
outbox rows, purchases and card figures must be equal up to ids, codes and clocks.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from loyalwallet import db
from loyalwallet.cards.models import Card, LedgerEntry
from loyalwallet.checkout import fast
from loyalwallet.checkout.models import Purchase
from loyalwallet.outbox.models import OutboxMessage
from support import Shop, new_shop, random_phone

PG_URL = os.environ.get("LOYALWALLET_TEST_DATABASE_URL")

pytestmark = pytest.mark.skipif(not PG_URL, reason="the fast path runs on PostgreSQL only")


@st.composite
def programmes(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(1, 3))
    spends = sorted(draw(st.sets(st.integers(1, 200_000), min_size=n - 1, max_size=n - 1)))
    tiers = [
        {"name": f"T{i}", "min_spend": s, "cashback_pct": draw(st.sampled_from([0, 1, 3, 5, 7.5, 10]))}
        for i, s in enumerate([0, *spends])
    ]
    rules: dict[str, Any] = {"tiers": tiers}
    rules["ttl_days"] = draw(st.sampled_from([None, 30, 365]))
    rules["welcome_points"] = draw(st.sampled_from([0, 0, 50, 500]))
    rules["max_redeem_pct"] = draw(st.sampled_from([0, 30, 50, 100]))
    rules["accrual_base"] = draw(st.sampled_from(["paid", "after_discounts"]))
    rules["min_check"] = draw(st.sampled_from([0, 0, 10_000]))
    rules["point_value"] = draw(st.sampled_from([100, 50]))
    rules["accrue_on_redeem"] = draw(st.booleans())
    # Rare branches the fast path leaves to the general one: still compared.
    rules["pending_hours"] = draw(st.sampled_from([0, 0, 0, 24]))
    rules["tier_period_days"] = draw(st.sampled_from([None, None, None, 30]))
    return rules


purchases = st.lists(
    st.fixed_dictionaries(
        {"amount": st.integers(1, 300_000)},
        optional={
            "external_id": st.text("abc123", min_size=1, max_size=8),
            "redeem_points": st.integers(0, 400),
        },
    ),
    min_size=1,
    max_size=6,
)


def _strip(value: Any) -> Any:
    """The answer without what differs between two merchants or two moments."""
    drop = {
        "id",
        "program_id",
        "code",
        "created_at",
        "last_visit_at",
        "apple_pass_url",
        "google_save_url",
        "web_card_url",
    }
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in drop}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


_IDS = ("id", "card", "code", "program_id", "card_id", "purchase_id")


def _rows(merchant_id: int) -> dict[str, Any]:
    with db.read() as s:
        ledger = [
            (
                e.kind,
                e.points,
                e.remaining,
                (e.expires_at - e.created_at) if e.expires_at else None,
                e.available_at is None,
                e.purchase_id is not None,
                e.actor_type,
                e.reason,
            )
            for e in s.scalars(
                select(LedgerEntry).where(LedgerEntry.merchant_id == merchant_id).order_by(LedgerEntry.id)
            )
        ]
        outbox = []
        for m in s.scalars(
            select(OutboxMessage).where(OutboxMessage.merchant_id == merchant_id).order_by(OutboxMessage.id)
        ):
            payload = dict(m.payload)
            payload.pop("at", None)
            payload.pop("card_id", None)
            if isinstance(payload.get("data"), dict):
                payload["data"] = {k: v for k, v in payload["data"].items() if k not in _IDS}
            outbox.append((m.topic, m.status, m.attempts, m.max_attempts, payload))
        cols = [c.name for c in Purchase.__table__.columns]
        skip = {"id", "merchant_id", "card_id", "program_id", "location_id", "actor_id", "created_at"}
        bought = [
            {c: getattr(p, c) for c in cols if c not in skip}
            for p in s.scalars(
                select(Purchase).where(Purchase.merchant_id == merchant_id).order_by(Purchase.id)
            )
        ]
        cards = [
            (
                c.balance,
                c.stamps,
                c.tier,
                c.spend,
                c.visits,
                c.version,
                c.first_purchase_at is None,
                c.last_visit_at is None,
            )
            for c in s.scalars(select(Card).where(Card.merchant_id == merchant_id).order_by(Card.id))
        ]
    return {"ledger": ledger, "outbox": outbox, "purchases": bought, "cards": cards}


def _run(
    shop: Shop, rules: dict[str, Any], phones: list[str], bodies: list[dict[str, Any]], on: bool
) -> list:
    fast.ENABLED = on
    try:
        pid = shop.program("bonus", rules)
        codes = [shop.card(pid, phone=p)["code"] for p in phones]
        answers = []
        for i, body in enumerate(bodies):
            key = {"Idempotency-Key": f"k{i}"} if i % 2 == 0 else {}
            r = shop.post(
                "/api/v1/purchases", {**body, "card": codes[i % len(codes)]}, role="cashier", headers=key
            )
            answers.append((r.status_code, _strip(r.json())))
            if i == 0:  # a retry of the first: the stored answer, from either path
                again = shop.post(
                    "/api/v1/purchases", {**body, "card": codes[0]}, role="cashier", headers=key
                )
                answers.append((again.status_code, _strip(again.json())))
        return answers
    finally:
        fast.ENABLED = True


@settings(
    max_examples=30,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # each example is slow to shrink
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rules=programmes(), bodies=purchases, n_cards=st.integers(1, 2))
def test_fast_and_general_paths_agree(client: Any, rules: dict[str, Any], bodies: list, n_cards: int) -> None:
    phones = [random_phone() for _ in range(n_cards)]
    general, quick = new_shop(client), new_shop(client)
    for shop in (general, quick):
        # Fill the per-process caches (API key, fraud rules, no Google issuer) as any
        # server has them after its first purchase for the merchant.
        warm = shop.program("bonus")
        shop.buy(shop.card(warm)["code"], 1000)
    served = fast.SERVED["fast"]
    expected = _run(general, rules, phones, bodies, on=False)
    assert fast.SERVED["fast"] == served
    got = _run(quick, rules, phones, bodies, on=True)
    assert got == expected
    assert _rows(quick.merchant_id) == _rows(general.merchant_id)
    everyday = not rules["pending_hours"] and not rules["tier_period_days"]
    if everyday and not bodies[0].get("redeem_points"):
        assert fast.SERVED["fast"] > served  # the fast path did answer


def test_the_fast_path_answers_everyday_purchases(shop: Shop) -> None:
    """A plain purchase with a key and its retry: the first goes through the fast path,
    the retry is the stored answer (general path) with the same body."""
    pid = shop.program("bonus")
    code = shop.card(pid)["code"]
    shop.buy(code, 1000)  # caches
    before = dict(fast.SERVED)
    first = shop.post(
        "/api/v1/purchases",
        {"card": code, "amount": 35_000},
        role="cashier",
        headers={"Idempotency-Key": "x1"},
    )
    assert first.status_code == 201 and fast.SERVED["fast"] == before["fast"] + 1
    again = shop.post(
        "/api/v1/purchases",
        {"card": code, "amount": 35_000},
        role="cashier",
        headers={"Idempotency-Key": "x1"},
    )
    assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true"
    assert again.json() == first.json()
    other = shop.post(
        "/api/v1/purchases", {"card": code, "amount": 1}, role="cashier", headers={"Idempotency-Key": "x1"}
    )
    assert other.status_code == 409 and other.json()["code"] == "idempotency_conflict"
    assert other.headers["content-type"].startswith("application/problem+json")
    unknown = shop.post("/api/v1/purchases", {"card": "NOPE", "amount": 100}, role="cashier")
    assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"
    bad = shop.post("/api/v1/purchases", {"card": code, "amount": "100"}, role="cashier")
    assert bad.status_code == 422 or bad.json()["code"] == "validation_error"
    noauth = shop.client.post("/api/v1/purchases", json={"card": code, "amount": 100})
    assert noauth.status_code == 401
    assert shop.get(f"/api/v1/cards/{code}").json()["balance"] == first.json()["card"]["balance"]
    assert dt.datetime.fromisoformat(first.json()["created_at"]).tzinfo is not None
