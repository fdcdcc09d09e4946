"""The retention table's counts (analytics/cohorts.py) equal the naive count from the
purchases: a card once per month, a merged invitation card as its kept card (in the kept
card's cohort, and in no cohort itself), refunded purchases still purchases, months in
the merchant's time zone, a purchase folded twice counted once; whether the counts were
kept by the fold from the start or filled afterwards for an existing database, range by
range, with folds and merges in between (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections import Counter
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert, select, update

from enrollment_support import merge_invitation_card
from loyalwallet import db
from loyalwallet.analytics import cohorts, queries, rollup
from loyalwallet.analytics.models import CohortMonth, RollupState
from loyalwallet.analytics.rules import Period
from loyalwallet.cards.models import Card
from loyalwallet.checkout.models import Purchase
from loyalwallet.merchants.models import Merchant
from support import Shop, new_shop

TZ = "Europe/Moscow"  # UTC+3: 21:00 UTC on the last day of a month is the next month here
BASE = dt.datetime(2026, 1, 31, 21, 30, tzinfo=dt.UTC)  # 2026-02-01 00:30 in Moscow
BONUS = {"tiers": [{"name": "Base", "min_spend": 0, "cashback_pct": 5}]}
ZERO = dt.timedelta(0)


def _purchase(merchant: int, card: int, program: int, at: dt.datetime, refunded: bool) -> dict[str, Any]:
    amount = 10_000
    zeros = [
        "tier_discount",
        "coupon_discount",
        "discount",
        "points_redeemed",
        "redeem_value",
        "stamps_added",
        "refunded_money",
        "points_reversed",
        "points_returned",
        "stamps_reversed",
        "spend_reversed",
    ]
    return {
        "merchant_id": merchant,
        "card_id": card,
        "program_id": program,
        "location_id": None,
        "actor_type": "api_key",
        "amount": amount,
        "to_pay": amount,
        "accrual_base": amount,
        "points_accrued": 500,
        "spend_added": amount,
        "refunded_amount": amount if refunded else 0,
        "status": "refunded" if refunded else "completed",
        "created_at": at,
        **dict.fromkeys(zeros, 0),
    }


def _buy(shop: Shop, cards: list[int], program: int, purchases: list[tuple[int, int, bool]]) -> None:
    """(card index, hours after BASE, refunded in full) straight into the table."""
    with db.transaction() as session:
        rows = [
            _purchase(shop.merchant_id, cards[k % len(cards)], program, BASE + dt.timedelta(hours=h), r)
            for k, h, r in purchases
        ]
        if rows:
            session.execute(insert(Purchase), rows)


def _month(at: dt.datetime) -> str:
    return at.astimezone(zoneinfo.ZoneInfo(TZ)).strftime("%Y-%m")


def _naive(merchant_id: int, kept: dict[int, int]) -> tuple[list[tuple[str, str, int]], dict[str, int]]:
    """(cohort month, month, cards) and cohort sizes from the purchases and the cards."""
    with db.read() as session:
        joined = {
            int(c): _month(at)
            for c, at in session.execute(
                select(Card.id, Card.created_at).where(Card.merchant_id == merchant_id)
            )
        }
        pairs = {
            (kept.get(int(c), int(c)), _month(at))
            for c, at in session.execute(
                select(Purchase.card_id, Purchase.created_at).where(Purchase.merchant_id == merchant_id)
            )
        }
    counts = Counter((joined[card], month) for card, month in pairs)
    sizes = Counter(m for c, m in joined.items() if c not in kept)
    return sorted((c, m, n) for (c, m), n in counts.items()), dict(sizes)


def _stored(
    shop: Shop,
) -> tuple[list[tuple[str, str, int]] | None, list[tuple[str, str, int]], dict[str, int]]:
    """The counts, the card months counted (the fallback), the cohort sizes (live)."""
    period = Period(dt.date(2025, 1, 1), dt.date(2027, 12, 31), TZ)
    f = queries.Filters(shop.merchant_id, period)
    with db.read() as session:
        counted = cohorts.activity(session, f, "2000-01", "2999-12")
        grouped = queries.cohort_activity(session, f, "2000-01", "2999-12")
        sizes = queries.cohort_sizes(session, f, "2025-01", "2027-12")
    return (None if counted is None else sorted(counted)), sorted(grouped), sizes


def _reset_to_an_existing_database() -> None:
    """As after the upgrade of a database folded before the counts existed."""
    with db.transaction() as session:
        session.execute(delete(CohortMonth))
        session.execute(update(RollupState).where(RollupState.name == cohorts.CURSOR).values(value=0))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cards=st.integers(2, 6),
    joined=st.lists(st.integers(0, 24 * 80), min_size=6, max_size=6),
    purchases=st.lists(
        st.tuples(st.integers(0, 5), st.integers(0, 24 * 120), st.booleans()), min_size=1, max_size=25
    ),
    late=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 24 * 120), st.booleans()), max_size=6),
    merges=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), max_size=3),
    existing=st.booleans(),
    fill_cards=st.integers(1, 3),
)
def test_counts_equal_the_purchases(
    client: TestClient,
    cards: int,
    joined: list[int],
    purchases: list[tuple[int, int, bool]],
    late: list[tuple[int, int, bool]],
    merges: list[tuple[int, int]],
    existing: bool,
    fill_cards: int,
) -> None:
    shop = new_shop(client, "Cohort café")
    with db.transaction() as session:
        session.execute(update(Merchant).where(Merchant.id == shop.merchant_id).values(timezone=TZ))
    program = shop.program("bonus", BONUS)
    codes = [shop.card(program)["code"] for _ in range(cards)]
    with db.transaction() as session:
        ids = [int(session.scalar(select(Card.id).where(Card.code == c)) or 0) for c in codes]
        for card, hours in zip(ids, joined, strict=False):  # cohorts over a few months
            at = BASE - dt.timedelta(hours=hours)
            session.execute(update(Card).where(Card.id == card).values(created_at=at))
    _buy(shop, ids, program, purchases)
    rollup.catch_up(settle=ZERO)
    if existing:
        _reset_to_an_existing_database()
    _buy(shop, ids, program, late)
    kept: dict[int, int] = {}
    for i, (a, b) in enumerate(merges):
        src, dst = ids[a % cards], ids[b % cards]
        if src == dst or src in kept or dst in kept or src in kept.values():
            continue
        merge_invitation_card(shop.merchant_id, program, src, dst)
        kept[src] = dst
        if existing and i == 0:
            with db.transaction() as session:  # the fill half-way at the first merge
                cohorts.fill_step(session, fill_cards)
        rollup.step(settle=ZERO)
    # The fill, one small range at a time, with a fold between each.
    while rollup.fill_step(fill_cards):
        rollup.step(settle=ZERO)
    rollup.catch_up(settle=ZERO)
    want, sizes = _naive(shop.merchant_id, kept)
    counted, grouped, got_sizes = _stored(shop)
    assert counted == grouped == want
    assert got_sizes == sizes
    # Folded twice (the watermark set back): the card months are a set, the counts too.
    with db.transaction() as session:
        session.execute(update(RollupState).where(RollupState.name == rollup.WATERMARK).values(value=0))
    rollup.catch_up(settle=ZERO)
    assert _stored(shop)[0] == want
