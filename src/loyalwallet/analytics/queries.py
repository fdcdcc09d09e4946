"""The dashboard's SQL. Each query returns a few aggregated rows; analytics.rules turns
them into figures. Every query is scoped by merchant.

Time zones: PostgreSQL converts with `timezone(tz, ts)`; SQLite has no zone database, so
it shifts by the merchant's current UTC offset (exact for zones without daylight saving,
such as Europe/Moscow; within an hour of a month's edge otherwise).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, Select, case, cast, func, literal, literal_column, select, text
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from loyalwallet.analytics.models import CardMonth, DayCategory, DayTotals, RollupState
from loyalwallet.analytics.rules import Cell, Period
from loyalwallet.cards.models import Card
from loyalwallet.checkout.models import Purchase, Refund
from loyalwallet.db import UTCDateTime
from loyalwallet.enrollment.models import Join

# Functions returning SELECT (card_id, wallet) for the cards saved in a wallet, e.g.
# select(AppleRegistration.card_id, literal("apple")).distinct(); put here by
# wiring.install() (wiring.WALLET_SOURCES).
# A card in none of them counts as "web"; one in several counts once, first source first.
WALLET_SOURCES: list[Callable[[], Select[Any, str]]] = []


@dataclass(frozen=True)
class Filters:
    merchant_id: int
    period: Period
    location_id: int | None = None
    program_id: int | None = None


def _is_pg(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _offset_minutes(tz: str) -> int:
    offset = dt.datetime.now(zoneinfo.ZoneInfo(tz)).utcoffset() or dt.timedelta()
    return int(offset.total_seconds() // 60)


def local_month(session: Session, col: Any, tz: str) -> ColumnElement[str]:
    if _is_pg(session):
        return func.to_char(func.timezone(tz, col), "YYYY-MM")
    return func.strftime("%Y-%m", col, f"{_offset_minutes(tz):+d} minutes")


def local_day(session: Session, col: Any, tz: str) -> ColumnElement[str]:
    if _is_pg(session):
        return func.to_char(func.timezone(tz, col), "YYYY-MM-DD")
    return func.strftime("%Y-%m-%d", col, f"{_offset_minutes(tz):+d} minutes")


def _ts(value: dt.datetime) -> Any:
    return literal(value, UTCDateTime())


def tune(session: Session) -> None:
    """PostgreSQL: enough memory for the per-card aggregate to stay in RAM, and no JIT
    (its compile time costs more than it saves on these short queries). Local to the
    dashboard's read transaction."""
    if _is_pg(session):
        session.execute(text("SET LOCAL work_mem = '64MB'"))
        session.execute(text("SET LOCAL jit = off"))


def _purchases_in(f: Filters) -> list[ColumnElement[bool]]:
    lo, hi = f.period.utc_bounds()
    where = [Purchase.merchant_id == f.merchant_id, Purchase.created_at >= lo, Purchase.created_at < hi]
    if f.location_id is not None:
        where.append(Purchase.location_id == f.location_id)
    if f.program_id is not None:
        where.append(Purchase.program_id == f.program_id)
    return where


def period_totals(
    session: Session, f: Filters, now: dt.datetime, counted: dict[str, int] | None = None
) -> dict[str, int]:
    """Purchases and revenue (the day rollup plus the purchases it has not folded in yet),
    the refunds of those purchases (see refunded_by_day()) and buyers and repeat buyers
    (`counted` when the caller has them from the guests' purchase days, analytics/activity.py;
    else buyers())."""
    refunded = refunded_by_day(session, f)
    return {
        **sales(session, f),
        "refunded_purchases": sum(n for _, n, _ in refunded),
        "refunded": sum(total for _, _, total in refunded),
        **(counted if counted is not None else buyers(session, f, now)),
    }


def sales(session: Session, f: Filters) -> dict[str, int]:
    """Purchases and revenue of the period, exact and cheap: the day rollup holds every
    purchase up to the watermark; the few above it are counted from the purchases."""
    watermark = session.scalar(select(RollupState.value).where(RollupState.name == "card_months")) or 0
    n, total = session.execute(
        select(
            func.coalesce(func.sum(DayTotals.purchases), 0), func.coalesce(func.sum(DayTotals.revenue), 0)
        ).where(*_days_in(f, DayTotals))
    ).one()
    tail_n, tail_total = session.execute(
        select(func.count(), func.coalesce(func.sum(Purchase.amount), 0)).where(
            Purchase.id > watermark, *_purchases_in(f)
        )
    ).one()
    return {"purchases": int(n) + int(tail_n), "revenue": int(total) + int(tail_total)}


def buyers(session: Session, f: Filters, now: dt.datetime) -> dict[str, int]:
    """Cards that bought in the period, and those among them that bought at least twice
    by its end (twice in it, or before it and again in it).

    A period that ends today, at every location, is answered from the cards' cached
    figures: a card bought in it exactly when its last purchase is on or after the start,
    and one whose first purchase is in the period made all its purchases in it. Otherwise
    the period's purchases are grouped by card (a pass over the covering index)."""
    lo, _hi = f.period.utc_bounds()
    if from_cached_figures(f, now):
        repeat = case(((Card.first_purchase_at < lo) | (Card.visits >= 2), 1), else_=0)
        stmt = select(func.count(), func.coalesce(func.sum(repeat), 0)).where(
            Card.merchant_id == f.merchant_id, Card.last_visit_at >= lo
        )
        if f.program_id is not None:
            stmt = stmt.where(Card.program_id == f.program_id)
        count, repeaters = session.execute(stmt).one()
        return {"buyers": int(count), "repeaters": int(repeaters)}
    merged = merged_cards()
    owner = func.coalesce(merged.c.dst, Purchase.card_id)
    per_card = (
        select(owner.label("card_id"), func.count().label("n"))
        .select_from(Purchase)
        .outerjoin(merged, merged.c.src == Purchase.card_id)
        .where(*_purchases_in(f))
        .group_by(owner)
        .subquery()
    )
    repeat = case(((per_card.c.n >= 2) | (Card.first_purchase_at < lo), 1), else_=0)
    count, repeaters = session.execute(
        select(func.count(), func.coalesce(func.sum(repeat), 0)).select_from(
            per_card.join(Card, Card.id == per_card.c.card_id)
        )
    ).one()
    return {"buyers": int(count), "repeaters": int(repeaters)}


def merged_cards() -> Any:
    """(src, dst): each invitation card merged into a guest's kept card; its purchases
    are the kept card's (one guest). Read through the joins' partial index."""
    return (
        select(Join.invitation_card_id.label("src"), func.max(Join.card_id).label("dst"))
        .where(Join.invitation_card_id.is_not(None), Join.card_id != Join.invitation_card_id)
        .group_by(Join.invitation_card_id)
        .subquery()
    )


def not_merged() -> ColumnElement[bool]:
    """The card was not merged into another (see merged_cards())."""
    return Card.id.not_in(
        select(Join.invitation_card_id).where(
            Join.invitation_card_id.is_not(None), Join.card_id != Join.invitation_card_id
        )
    )


def from_cached_figures(f: Filters, now: dt.datetime) -> bool:
    """Whether buyers() answers from the cards' cached figures: a period that ends now,
    at every location."""
    return f.location_id is None and f.period.utc_bounds()[1] >= now


def _days_in(f: Filters, table: Any) -> list[ColumnElement[bool]]:
    where = [
        table.merchant_id == f.merchant_id,
        table.day >= f.period.start.isoformat(),
        table.day <= f.period.end.isoformat(),
    ]
    if f.location_id is not None:
        where.append(table.location_id == f.location_id)
    if f.program_id is not None:
        where.append(table.program_id == f.program_id)
    return where


def daily(session: Session, f: Filters) -> list[tuple[str, int, int]]:
    """(local day, purchases, revenue) from the day rollup, and the purchases it has not
    folded in yet (today's are live, as in sales())."""
    rows = session.execute(
        select(DayTotals.day, func.sum(DayTotals.purchases), func.sum(DayTotals.revenue))
        .where(*_days_in(f, DayTotals))
        .group_by(DayTotals.day)
    ).all()
    watermark = session.scalar(select(RollupState.value).where(RollupState.name == "card_months")) or 0
    day = local_day(session, Purchase.created_at, f.period.tz).label("day")
    tail = session.execute(
        select(day, func.count(), func.coalesce(func.sum(Purchase.amount), 0))
        .where(Purchase.id > watermark, *_purchases_in(f))
        .group_by(day)
    ).all()
    return [(d, int(n or 0), int(total or 0)) for d, n, total in [*rows, *tail]]


def refunded_by_day(session: Session, f: Filters) -> list[tuple[str, int, int]]:
    """Refunds of the period's purchases, by the local day of the purchase: (day,
    purchases refunded in full, amount refunded), whenever the refunds were made. Read
    through the refunds (few) and the purchases' primary key."""
    refunded = select(Refund.purchase_id).where(Refund.merchant_id == f.merchant_id).distinct().subquery()
    day = local_day(session, Purchase.created_at, f.period.tz).label("day")
    full = case((Purchase.refunded_amount >= Purchase.amount, 1), else_=0)
    rows = session.execute(
        select(day, func.coalesce(func.sum(full), 0), func.coalesce(func.sum(Purchase.refunded_amount), 0))
        .select_from(Purchase)
        .join(refunded, refunded.c.purchase_id == Purchase.id)
        .where(*_purchases_in(f))
        .group_by(day)
    ).all()
    return [(d, int(n), int(total)) for d, n, total in rows]


def upsell(session: Session, f: Filters) -> dict[str, Any]:
    """Checks with lines, and those whose lines span two or more categories; and per
    category the checks containing it and its revenue (from the day rollups)."""
    lined, multi = session.execute(
        select(
            func.coalesce(func.sum(DayTotals.lined), 0), func.coalesce(func.sum(DayTotals.upsell), 0)
        ).where(*_days_in(f, DayTotals))
    ).one()
    checks = func.sum(DayCategory.checks)
    by_category = session.execute(
        select(DayCategory.category, checks, func.sum(DayCategory.revenue))
        .where(*_days_in(f, DayCategory))
        .group_by(DayCategory.category)
        .order_by(checks.desc())
        .limit(20)
    ).all()
    return {
        "lined": int(lined),
        "upsell": int(multi),
        "categories": [
            {"category": c or "", "checks": int(n), "revenue": int(total or 0)} for c, n, total in by_category
        ],
    }


def refunds(session: Session, f: Filters) -> dict[str, int]:
    lo, hi = f.period.utc_bounds()
    stmt = select(func.count(), func.coalesce(func.sum(Refund.amount), 0)).where(
        Refund.merchant_id == f.merchant_id, Refund.created_at >= lo, Refund.created_at < hi
    )
    if f.location_id is not None or f.program_id is not None:
        stmt = stmt.join(Purchase, Purchase.id == Refund.purchase_id)
        if f.location_id is not None:
            stmt = stmt.where(Purchase.location_id == f.location_id)
        if f.program_id is not None:
            stmt = stmt.where(Purchase.program_id == f.program_id)
    n, total = session.execute(stmt).one()
    return {"count": int(n), "amount": int(total)}


def issued(session: Session, f: Filters) -> list[dict[str, Any]]:
    """Cards issued in the period by channel and wallet, with how many have bought since."""
    lo, hi = f.period.utc_bounds()
    wallet: ColumnElement[str] = literal_column("'web'")
    stmt_from: Any = Card
    sources = [src() for src in WALLET_SOURCES]
    cards = select(Card.id, Card.channel, Card.first_purchase_at).where(
        Card.merchant_id == f.merchant_id, Card.created_at >= lo, Card.created_at < hi
    )
    if f.program_id is not None:
        cards = cards.where(Card.program_id == f.program_id)
    c = cards.subquery()
    stmt_from = c
    if sources:
        saved = [s.subquery() for s in sources]
        branches = []
        for s in saved:
            col_card, col_wallet = list(s.c)[:2]
            stmt_from = stmt_from.outerjoin(s, col_card == c.c.id)
            branches.append((col_card.is_not(None), col_wallet))
        wallet = case(*branches, else_=literal("web"))
    rows = session.execute(
        select(
            c.c.channel,
            wallet.label("wallet"),
            func.count(),
            func.sum(case((c.c.first_purchase_at.is_not(None), 1), else_=0)),
        )
        .select_from(stmt_from)
        # PostgreSQL refuses a constant in GROUP BY: group by the wallet only when it is a column.
        .group_by(c.c.channel, *([wallet] if sources else []))
    ).all()
    return [
        {"channel": ch or "", "wallet": w, "cards": int(n), "activated": int(a or 0)} for ch, w, n, a in rows
    ]


def recency_days(session: Session, now: dt.datetime) -> ColumnElement[Any]:
    """Whole days from a card's last purchase to `now` (NULL when it never bought)."""
    if _is_pg(session):
        days: Any = func.floor(func.extract("epoch", _ts(now) - Card.last_visit_at) / 86400)
    else:
        days = func.julianday(_ts(now)) - func.julianday(Card.last_visit_at)
    return case((Card.last_visit_at.is_(None), None), else_=cast(days, Integer))


def guest_cells(session: Session, f: Filters, now: dt.datetime) -> list[Cell]:
    """Cards by (days since the last purchase, purchases), from the cards' cached figures:
    one pass over the cards, whatever the number of purchases."""
    recency = recency_days(session, now).label("recency")
    stmt = select(recency, Card.visits, func.count(), func.coalesce(func.sum(Card.spend), 0)).where(
        Card.merchant_id == f.merchant_id, Card.customer_id.is_not(None)
    )
    if f.program_id is not None:
        stmt = stmt.where(Card.program_id == f.program_id)
    rows = session.execute(stmt.group_by(recency, Card.visits)).all()
    return [
        Cell(None if r is None else max(0, int(r)), int(v or 0), int(n), int(s or 0)) for r, v, n, s in rows
    ]


def cohort_sizes(session: Session, f: Filters, first: str, last: str) -> dict[str, int]:
    """Cards that joined in each month first..last (the merchant's time zone); an
    invitation card merged into a guest's card is that guest's, not a new one."""
    zone = f.period.tz
    lo = dt.datetime.fromisoformat(first + "-01").replace(tzinfo=zoneinfo.ZoneInfo(zone)) - dt.timedelta(
        days=1
    )
    month = local_month(session, Card.created_at, zone).label("month")
    stmt = select(month, func.count()).where(
        Card.merchant_id == f.merchant_id, Card.created_at >= lo, not_merged()
    )
    if f.program_id is not None:
        stmt = stmt.where(Card.program_id == f.program_id)
    rows = session.execute(stmt.group_by(month)).all()
    return {m: int(n) for m, n in rows if first <= m <= last}


def cohort_activity(session: Session, f: Filters, first: str, last: str) -> list[tuple[str, str, int]]:
    stmt = select(CardMonth.cohort_month, CardMonth.month, func.count()).where(
        CardMonth.merchant_id == f.merchant_id,
        CardMonth.cohort_month >= first,
        CardMonth.cohort_month <= last,
        CardMonth.month <= last,
    )
    if f.program_id is not None:
        stmt = stmt.where(CardMonth.program_id == f.program_id)
    rows = session.execute(stmt.group_by(CardMonth.cohort_month, CardMonth.month)).all()
    return [(c, m, int(n)) for c, m, n in rows]
