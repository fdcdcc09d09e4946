"""Segments as SQL: a Segment spec (campaigns.rules) -> a SELECT of card ids.

Only active cards of identified guests (not erased) are ever selected. RFM segments are
the dashboard's (analytics.rules), scored in Python over one pass of the merchant's cards.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from sqlalchemy import ColumnElement, Select, false, func, or_, select
from sqlalchemy.orm import Session

from loyalwallet.campaigns.rules import RFM_SEGMENTS, Segment, birthday_ranges
from loyalwallet.cards.models import Card
from loyalwallet.customers.models import Customer


def _range(column: Any, rng: Any) -> list[Any]:
    out: list[Any] = []
    if rng is None:
        return out
    if rng.min is not None:
        out.append(column >= rng.min)
    if rng.max is not None:
        out.append(column <= rng.max)
    return out


def rfm_of_cards(session: Session, merchant_id: int, now: dt.datetime) -> dict[int, str]:
    """Each card that bought, with its RFM segment exactly as the dashboard counts it
    (analytics.rules.rfm_segment of days since the last purchase and purchases)."""
    from loyalwallet.analytics import rules as analytics
    from loyalwallet.analytics.queries import recency_days

    rows = session.execute(
        select(Card.id, recency_days(session, now), Card.visits).where(
            Card.merchant_id == merchant_id, Card.customer_id.is_not(None), Card.visits > 0
        )
    ).all()
    return {card_id: analytics.rfm_segment(max(0, int(r)), int(v)) for card_id, r, v in rows if r is not None}


def conditions(
    merchant_id: int,
    spec: Segment,
    now: dt.datetime,
    today: dt.date,
    *,
    consent: bool | None = None,
    session: Session | None = None,
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
        if session is None:
            raise ValueError("an RFM segment needs the session")
        named = set(spec.rfm) - {"no_visits"}
        ids = [card_id for card_id, seg in rfm_of_cards(session, merchant_id, now).items() if seg in named]
        parts: list[ColumnElement[bool]] = [Card.id.in_(ids)] if ids else []
        if "no_visits" in spec.rfm:
            parts.append(Card.visits == 0)
        where.append(or_(*parts) if parts else false())
    return where


def card_ids(
    session: Session,
    merchant_id: int,
    spec: Segment,
    now: dt.datetime,
    today: dt.date,
    *,
    consent: bool | None = None,
) -> Select[Any]:
    return (
        select(Card.id)
        .join(Customer, Customer.id == Card.customer_id)
        .where(*conditions(merchant_id, spec, now, today, consent=consent, session=session))
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
        .where(*conditions(merchant_id, spec, now, today, consent=consent, session=session))
    )
    return int(session.scalar(stmt) or 0)


def rfm_counts(session: Session, merchant_id: int, now: dt.datetime | None = None) -> dict[str, int]:
    from loyalwallet.db import utcnow

    counts = Counter(rfm_of_cards(session, merchant_id, now or utcnow()).values())
    out = {name: int(counts.get(name, 0)) for name in RFM_SEGMENTS}
    out["no_visits"] = int(
        session.scalar(
            select(func.count()).where(
                Card.merchant_id == merchant_id, Card.customer_id.is_not(None), Card.visits == 0
            )
        )
        or 0
    )
    return out
