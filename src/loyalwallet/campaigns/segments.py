"""Segments as SQL: a Segment spec (campaigns.rules) -> a SELECT of card ids.

Only active cards of identified guests (not erased) are ever selected. RFM scores come
from window functions (percent_rank), which SQLite (3.25+) and PostgreSQL both have.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Select, and_, case, func, literal, or_, select
from sqlalchemy.orm import Session

from loyalwallet.campaigns.rules import RFM_GRID, SCORE_EDGES, Segment, birthday_ranges
from loyalwallet.cards.models import Card
from loyalwallet.customers.models import Customer


def _range(column: Any, rng: Any) -> list[Any]:
    out = []
    if rng is None:
        return out
    if rng.min is not None:
        out.append(column >= rng.min)
    if rng.max is not None:
        out.append(column <= rng.max)
    return out


def _score(rank: Any) -> Any:
    """percent_rank (0..1) -> 1..5 with the edges of rules.SCORE_EDGES."""
    whens = [(rank >= float(edge), 5 - i) for i, edge in enumerate(reversed(SCORE_EDGES))]
    return case(*whens, else_=1)


def rfm_table(merchant_id: int) -> Any:
    """A subquery (card_id, r, f, m, segment) over the merchant's cards that visited."""
    ranks = (
        select(
            Card.id.label("card_id"),
            func.percent_rank().over(partition_by=Card.program_id, order_by=Card.last_visit_at).label("rr"),
            func.percent_rank().over(partition_by=Card.program_id, order_by=Card.visits).label("fr"),
            func.percent_rank().over(partition_by=Card.program_id, order_by=Card.spend).label("mr"),
        )
        .where(Card.merchant_id == merchant_id, Card.visits > 0, Card.last_visit_at.is_not(None))
        .subquery()
    )
    scores = select(
        ranks.c.card_id,
        _score(ranks.c.rr).label("r"),
        _score(ranks.c.fr).label("f"),
        _score(ranks.c.mr).label("m"),
    ).subquery()
    named = case(
        *[
            (
                and_(
                    scores.c.r.between(r_lo, r_hi),
                    scores.c.f.between(f_lo, f_hi),
                    scores.c.m >= m_lo,
                ),
                literal(name),
            )
            for name, r_lo, r_hi, f_lo, f_hi, m_lo in RFM_GRID
        ],
        else_=literal("lost"),
    )
    return select(scores.c.card_id, scores.c.r, scores.c.f, scores.c.m, named.label("segment")).subquery()


def conditions(
    merchant_id: int, spec: Segment, now: dt.datetime, today: dt.date, *, consent: bool | None = None
) -> list[Any]:
    """WHERE clauses over Card joined with Customer. `consent` overrides the spec's."""
    want_consent = spec.marketing_consent if consent is None else consent
    where: list[Any] = [
        Card.merchant_id == merchant_id,
        Card.status == "active",
        Customer.erased_at.is_(None),
    ]
    if want_consent:
        where.append(Customer.marketing_consent.is_(True))
    if spec.program_ids:
        where.append(Card.program_id.in_(spec.program_ids))
    if spec.tiers:
        where.append(Card.tier.in_(spec.tiers))
    where += _range(Card.balance, spec.balance)
    where += _range(Card.stamps, spec.stamps)
    where += _range(Card.visits, spec.visits)
    where += _range(Card.spend, spec.spend)
    if spec.last_visit_days is not None:
        where.append(Card.last_visit_at.is_not(None))
        if spec.last_visit_days.min is not None:
            where.append(Card.last_visit_at <= now - dt.timedelta(days=spec.last_visit_days.min))
        if spec.last_visit_days.max is not None:
            where.append(Card.last_visit_at >= now - dt.timedelta(days=spec.last_visit_days.max))
    if spec.never_visited is True:
        where.append(Card.visits == 0)
    elif spec.never_visited is False:
        where.append(Card.visits > 0)
    if spec.joined_days is not None:
        if spec.joined_days.min is not None:
            where.append(Card.created_at <= now - dt.timedelta(days=spec.joined_days.min))
        if spec.joined_days.max is not None:
            where.append(Card.created_at >= now - dt.timedelta(days=spec.joined_days.max))
    if spec.birthday_in_days is not None:
        where.append(
            or_(
                *[
                    Customer.birth_md.between(lo, hi)
                    for lo, hi in birthday_ranges(today, spec.birthday_in_days)
                ]
            )
        )
    if spec.channels:
        where.append(Card.channel.in_(spec.channels))
    if spec.rfm:
        named = [n for n in spec.rfm if n != "no_visits"]
        parts = []
        if named:
            rfm = rfm_table(merchant_id)
            parts.append(Card.id.in_(select(rfm.c.card_id).where(rfm.c.segment.in_(named))))
        if "no_visits" in spec.rfm:
            parts.append(Card.visits == 0)
        where.append(or_(*parts))
    return where


def card_ids(
    merchant_id: int, spec: Segment, now: dt.datetime, today: dt.date, *, consent: bool | None = None
) -> Select[Any]:
    return (
        select(Card.id)
        .join(Customer, Customer.id == Card.customer_id)
        .where(*conditions(merchant_id, spec, now, today, consent=consent))
        .order_by(Card.id)
    )


def count(
    session: Session,
    merchant_id: int,
    spec: Segment,
    now: dt.datetime,
    today: dt.date,
    *,
    consent: bool | None = None,
) -> int:
    stmt = (
        select(func.count())
        .select_from(Card)
        .join(Customer, Customer.id == Card.customer_id)
        .where(*conditions(merchant_id, spec, now, today, consent=consent))
    )
    return int(session.scalar(stmt) or 0)


def rfm_counts(session: Session, merchant_id: int) -> dict[str, int]:
    rfm = rfm_table(merchant_id)
    rows = session.execute(select(rfm.c.segment, func.count()).group_by(rfm.c.segment)).all()
    out = {name: 0 for name, *_ in RFM_GRID}
    out.update({str(name): int(n) for name, n in rows})
    out["no_visits"] = int(
        session.scalar(
            select(func.count()).where(
                Card.merchant_id == merchant_id, Card.visits == 0, Card.status == "active"
            )
        )
        or 0
    )
    return out
