"""Hypothesis over the units ledger, driven through the services on the real database:
whatever mix of uses (in purchases and without), purchase refunds, renewals and a
refund, units_left equals the sum of the entries and stays within 0..units sold, paid
equals the money entries and never goes below zero, no day passes the daily limit, and
`check-ledger` finds nothing."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from loyalwallet import db
from loyalwallet.checkout.schemas import PurchaseIn
from loyalwallet.checkout.schemas import RefundIn as PurchaseRefundIn
from loyalwallet.checkout.service import purchase, refund
from loyalwallet.errors import DomainError
from loyalwallet.merchants.actors import Actor
from loyalwallet.subscriptions import ledger
from loyalwallet.subscriptions.models import SubscriptionEntry
from loyalwallet.subscriptions.schemas import PlanIn, RefundIn, RenewIn, SaleIn, UseIn
from loyalwallet.subscriptions.service import create_plan, renew, sell, use
from loyalwallet.subscriptions.service import refund as refund_subscription
from support import Shop

EXPECTED = {
    "subscription_used_up",
    "subscription_daily_limit",
    "subscription_unavailable",
    "subscription_refund_too_large",
    "refund_exceeds_purchase",
    "validation_error",
}
ops = st.lists(
    st.tuples(st.sampled_from(["use", "buy", "refund_buy", "renew", "refund"]), st.integers(0, 400_000)),
    min_size=1,
    max_size=16,
)


def _try(fn: Any) -> Any:
    try:
        with db.transaction() as session:
            return fn(session)
    except DomainError as exc:
        assert exc.code in EXPECTED, exc
        return None


@given(
    units=st.integers(1, 6),
    daily=st.one_of(st.none(), st.integers(1, 3)),
    price=st.integers(0, 200_000),
    steps=ops,
)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_units_ledger_invariants(shop: Shop, units: int, daily: int | None, price: int, steps: list) -> None:
    actor = Actor(merchant_id=shop.merchant_id, role="manager", kind="system")
    card = shop.card(shop.program("bonus"))["code"]
    with db.transaction() as session:
        plan = create_plan(
            session, actor, PlanIn(name="P", units=units, period_days=30, daily_limit=daily, price=price)
        )
        sub_id = sell(session, actor, SaleIn(plan_id=plan["id"], card=card))[1]["id"]
    purchases: list[int] = []
    for kind, value in steps:
        if kind == "use":
            _try(lambda s: use(s, actor, sub_id, UseIn()))
        elif kind == "buy":
            body = PurchaseIn(card=card, amount=20_000, items=[{"price": 20_000}], subscription=sub_id)
            out = _try(lambda s, b=body: purchase(s, actor, b))
            if out:
                purchases.append(out[1]["id"])
        elif kind == "refund_buy" and purchases:
            pid = purchases[value % len(purchases)]
            _try(lambda s, p=pid: refund(s, actor, p, PurchaseRefundIn()))
        elif kind == "renew":
            _try(lambda s: renew(s, actor, sub_id, RenewIn()))
        elif kind == "refund":
            asked = value if value % 2 else None
            _try(lambda s, a=asked: refund_subscription(s, actor, sub_id, RefundIn(amount=a)))
    with db.read() as session:
        sub = ledger.get(session, shop.merchant_id, sub_id, lock=False)
        units_sum, money_sum = session.execute(
            select(func.sum(SubscriptionEntry.units), func.sum(SubscriptionEntry.amount)).where(
                SubscriptionEntry.subscription_id == sub_id
            )
        ).one()
        assert sub.units_left == units_sum and 0 <= sub.units_left <= sub.units_total
        assert sub.paid == money_sum and 0 <= sub.paid <= sub.price_total
        assert [b for b in ledger.check_ledger(session) if b["subscription_id"] == sub_id] == []
