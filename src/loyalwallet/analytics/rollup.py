"""Folding new purchases into the rollups (analytics/models.py), incrementally.

A watermark (the last purchase id folded in) lives in analytics_state. Each step takes
the purchases above it that are at least SETTLE seconds old (an id is assigned before
its transaction commits, so a younger purchase with a lower id might still be on its
way), inserts their distinct (card, month) pairs with ON CONFLICT DO NOTHING (a set) and
counts the new ones per cohort (analytics/cohorts.py), adds their sums to the day totals,
and moves the watermark, all in one transaction. The watermark row is locked, so any
number of workers may run it.

A merged invitation card's purchases are its kept card's (one guest, in the kept card's
cohort), as in the guests' purchase days (analytics/activity.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import case, func, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from loyalwallet import db
from loyalwallet.analytics import cohorts
from loyalwallet.analytics.models import DayCategory, DayTotals, RollupState
from loyalwallet.analytics.queries import local_day, local_month, merged_cards
from loyalwallet.cards.models import Card
from loyalwallet.checkout.models import Purchase, PurchaseLine
from loyalwallet.merchants.models import Merchant

WATERMARK = "card_months"
SETTLE = dt.timedelta(seconds=60)


def _state(session: Session) -> RollupState:
    stmt = db.for_update(select(RollupState).where(RollupState.name == WATERMARK))
    state = session.scalar(stmt)
    if state is None:
        insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        session.execute(
            insert(RollupState)
            .values(name=WATERMARK, value=0, updated_at=db.utcnow())
            .on_conflict_do_nothing(index_elements=["name"])
        )
        state = session.scalar(stmt)
    assert state is not None
    return state


def step(batch: int = 100_000, settle: dt.timedelta = SETTLE, now: dt.datetime | None = None) -> int:
    """Fold in up to `batch` purchase ids; returns how many ids the watermark moved."""
    now = now or db.utcnow()
    with db.transaction() as session:
        state = _state(session)
        lo = state.value
        first = session.scalar(select(func.min(Purchase.id)).where(Purchase.id > lo))
        if first is None:
            return 0
        hi = session.scalar(
            select(func.max(Purchase.id)).where(
                Purchase.id > lo, Purchase.id < first + batch, Purchase.created_at <= now - settle
            )
        )
        if hi is None:
            return 0
        # Stop before the first purchase that has not settled yet.
        unsettled = session.scalar(
            select(func.min(Purchase.id)).where(
                Purchase.id > lo, Purchase.id <= hi, Purchase.created_at > now - settle
            )
        )
        if unsettled is not None:
            hi = unsettled - 1
            if hi <= lo:
                return 0
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        merchants = session.execute(
            select(Purchase.merchant_id, Merchant.timezone)
            .distinct()
            .join(Merchant, Merchant.id == Purchase.merchant_id)
            .where(Purchase.id > lo, Purchase.id <= hi)
        ).all()
        counted_upto = cohorts.cursor(session).value
        merged = merged_cards()
        owner = func.coalesce(merged.c.dst, Purchase.card_id)
        for merchant_id, tz in merchants:
            pairs = (
                select(
                    owner,
                    local_month(session, Purchase.created_at, tz),
                    literal(merchant_id),
                    Card.program_id,
                    local_month(session, Card.created_at, tz),
                )
                .distinct()
                .select_from(Purchase)
                .outerjoin(merged, merged.c.src == Purchase.card_id)
                .join(Card, Card.id == owner)
                .where(Purchase.merchant_id == merchant_id, Purchase.id > lo, Purchase.id <= hi)
            )
            cohorts.insert_counted(session, pairs, counted_upto)
            _fold_days(session, insert, merchant_id, tz, lo, hi)
        state.value = hi
        state.updated_at = now
        return hi - lo


def _fold_days(session: Session, insert: Any, merchant_id: int, tz: str, lo: int, hi: int) -> None:
    """Add the purchases lo < id <= hi to the day totals and day categories. The sums are
    added (not a set), which is exactly once because the watermark moves in the same
    transaction."""
    day = local_day(session, Purchase.created_at, tz)
    location = func.coalesce(Purchase.location_id, 0)
    cats = (
        select(
            PurchaseLine.purchase_id,
            func.count(func.distinct(func.coalesce(PurchaseLine.category, ""))).label("cats"),
        )
        .where(PurchaseLine.purchase_id > lo, PurchaseLine.purchase_id <= hi)
        .group_by(PurchaseLine.purchase_id)
        .subquery()
    )
    totals = (
        select(
            literal(merchant_id),
            day,
            location,
            Purchase.program_id,
            func.count(),
            func.sum(Purchase.amount),
            func.count(cats.c.purchase_id),
            func.coalesce(func.sum(case((cats.c.cats >= 2, 1), else_=0)), 0),
        )
        .outerjoin(cats, cats.c.purchase_id == Purchase.id)
        .where(Purchase.merchant_id == merchant_id, Purchase.id > lo, Purchase.id <= hi)
        .group_by(day, location, Purchase.program_id)
    )
    stmt = insert(DayTotals).from_select(
        ["merchant_id", "day", "location_id", "program_id", "purchases", "revenue", "lined", "upsell"], totals
    )
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["merchant_id", "day", "location_id", "program_id"],
            set_={
                k: getattr(DayTotals, k) + getattr(stmt.excluded, k)
                for k in ("purchases", "revenue", "lined", "upsell")
            },
        )
    )
    category = func.coalesce(PurchaseLine.category, "")
    by_category = (
        select(
            literal(merchant_id),
            day,
            location,
            Purchase.program_id,
            category,
            func.count(func.distinct(PurchaseLine.purchase_id)),
            func.sum(PurchaseLine.qty * PurchaseLine.price),
        )
        .join(Purchase, Purchase.id == PurchaseLine.purchase_id)
        .where(
            Purchase.merchant_id == merchant_id,
            PurchaseLine.purchase_id > lo,
            PurchaseLine.purchase_id <= hi,
        )
        .group_by(day, location, Purchase.program_id, category)
    )
    stmt = insert(DayCategory).from_select(
        ["merchant_id", "day", "location_id", "program_id", "category", "checks", "revenue"], by_category
    )
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["merchant_id", "day", "location_id", "program_id", "category"],
            set_={k: getattr(DayCategory, k) + getattr(stmt.excluded, k) for k in ("checks", "revenue")},
        )
    )


def merge_cards(session: Session, source: int, target: int) -> None:
    """The invitation card `source` was merged into `target` in this transaction: its
    card months go to the kept card (analytics/cohorts.py). Under the watermark's lock, so
    no step folds between; its later purchases are mapped by the step itself."""
    _state(session)
    cohorts.merge_cards(session, source, target)


def fill_step(cards: int = cohorts.CARDS_PER_STEP) -> int:
    """One step of counting an existing database's card months per cohort (resumable:
    its own transaction, under the watermark's lock); 0 when done."""
    with db.transaction() as session:
        _state(session)
        return cohorts.fill_step(session, cards)


def catch_up(
    batch: int = 100_000,
    settle: dt.timedelta = SETTLE,
    max_steps: int | None = None,
    on_step: Callable[[float | None], None] | None = None,
) -> int:
    """Fold in everything that has settled, and fill the cohort counts of an existing
    database (a step of each per round); returns how many purchase ids were covered.
    `on_step` gets the fill's progress (None: done) after each round."""
    total = 0
    steps = 0
    while max_steps is None or steps < max_steps:
        moved = step(batch, settle)
        filled = fill_step()
        if on_step is not None:
            with db.read() as session:
                on_step(cohorts.progress(session))
        if moved == 0 and filled == 0:
            break
        total += moved
        steps += 1
    return total


def watermark() -> tuple[int, dt.datetime | None]:
    with db.read() as session:
        state = session.get(RollupState, WATERMARK)
        return (state.value, state.updated_at) if state else (0, None)


def catch_up_some() -> None:
    """The periodic job: a bounded step of catching up (at most 20 batches)."""
    catch_up(max_steps=20)
