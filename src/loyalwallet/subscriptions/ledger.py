"""The units ledger of subscriptions: lock, move units (and money), expire, check.

Every movement locks the subscription row (PostgreSQL `SELECT ... FOR UPDATE`; SQLite's
write transaction is BEGIN IMMEDIATE), writes one entry and the cached figures in the
same transaction; a use never takes `units_left` below zero and the day's uses are
counted under that lock, so concurrent uses never pass the daily limit either. Lock
order, where a purchase is involved: the card, then the purchase, then the subscription.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from loyalwallet.db import for_update, utcnow
from loyalwallet.errors import DomainError
from loyalwallet.merchants.actors import Actor, system
from loyalwallet.merchants.models import Merchant
from loyalwallet.outbox.service import emit_event
from loyalwallet.subscriptions.models import Subscription, SubscriptionEntry

_ENTRIES = SubscriptionEntry.__table__
_INSERT_ENTRY = insert(_ENTRIES).returning(_ENTRIES.c.id)


def not_found() -> DomainError:
    return DomainError("not_found", "subscription not found", field="subscription")


def local_day(session: Session, merchant_id: int, now: dt.datetime) -> dt.date:
    from zoneinfo import ZoneInfo

    tz = session.scalar(select(Merchant.timezone).where(Merchant.id == merchant_id)) or "UTC"
    return now.astimezone(ZoneInfo(tz)).date()


def get(session: Session, merchant_id: int, subscription_id: int, *, lock: bool) -> Subscription:
    """The merchant's subscription (another merchant's is not found)."""
    stmt = select(Subscription).where(
        Subscription.id == subscription_id, Subscription.merchant_id == merchant_id
    )
    sub = session.scalar(for_update(stmt) if lock else stmt)
    if sub is None:
        raise not_found()
    return sub


def used_on(session: Session, subscription_id: int, day: dt.date) -> int:
    """Uses on this local day, net of the uses refunded purchases gave back."""
    n = session.scalar(
        select(func.coalesce(func.sum(-SubscriptionEntry.units), 0)).where(
            SubscriptionEntry.subscription_id == subscription_id,
            SubscriptionEntry.local_day == day,
            SubscriptionEntry.kind.in_(("use", "return")),
        )
    )
    return int(n or 0)


def move(
    session: Session,
    sub: Subscription,
    kind: str,
    units: int,
    amount: int,
    actor: Actor,
    now: dt.datetime,
    day: dt.date,
    **refs: Any,
) -> int:
    """Write one entry on a locked subscription and its cached figures. Returns its id."""
    if sub.units_left + units < 0:
        raise DomainError("subscription_used_up", "no units left on the subscription")
    if sub.paid + amount < 0:
        raise DomainError("subscription_refund_too_large", "more than was paid", field="amount")
    entry_id: int = session.execute(
        _INSERT_ENTRY,
        {
            "merchant_id": sub.merchant_id,
            "subscription_id": sub.id,
            "kind": kind,
            "units": units,
            "amount": amount,
            "covered": refs.get("covered", 0),
            "local_day": day,
            "purchase_id": refs.get("purchase_id"),
            "use_id": refs.get("use_id"),
            "location_id": refs.get("location_id"),
            "external_id": refs.get("external_id"),
            "actor_type": actor.kind,
            "actor_id": actor.id,
            "created_at": now,
        },
    ).scalar_one()
    sub.units_left += units
    sub.paid += amount
    if kind in ("sale", "renewal"):
        sub.units_total += units
        sub.price_total += amount
    sub.updated_at = now
    return entry_id


def event_payload(sub: Subscription, **extra: Any) -> dict[str, Any]:
    """What `subscription.*` webhooks carry (no personal data)."""
    return {
        "id": sub.id,
        "plan_id": sub.plan_id,
        "card_id": sub.card_id,
        "name": sub.name,
        "status": sub.status,
        "units_left": sub.units_left,
        "units_total": sub.units_total,
        "ends_at": sub.ends_at.isoformat(),
        **extra,
    }


def expire(session: Session, sub: Subscription, now: dt.datetime) -> None:
    """Write off what is left of a locked subscription past its end."""
    left = sub.units_left
    day = local_day(session, sub.merchant_id, now)
    if left:
        move(session, sub, "expiry", -left, 0, system(sub.merchant_id), now, day)
    sub.status = "expired"
    sub.updated_at = now
    emit_event(session, sub.merchant_id, "subscription.expired", event_payload(sub, units_expired=left))


def expire_due(now: dt.datetime | None = None, batch: int = 200) -> int:
    """The periodic sweep: end the subscriptions past their end, each in its own short
    transaction (the card's pass is told). Returns how many ended."""
    from loyalwallet import db
    from loyalwallet.cards.book import CardBook, lock_card_by_id

    now = now or utcnow()
    with db.read() as session:
        ids = session.scalars(
            select(Subscription.id)
            .where(Subscription.status == "active", Subscription.ends_at <= now)
            .order_by(Subscription.ends_at)
            .limit(batch)
        ).all()
    done = 0
    for sub_id in ids:
        with db.transaction() as session:
            card_id = session.scalar(select(Subscription.card_id).where(Subscription.id == sub_id))
            if card_id is None:
                continue
            card, program = lock_card_by_id(session, card_id)  # the lock order: the card first
            sub = session.scalar(for_update(select(Subscription).where(Subscription.id == sub_id)))
            if sub is None or sub.status != "active" or sub.ends_at > now:
                continue
            expire(session, sub, now)
            CardBook(session, card, program, now).touch("subscription")
            done += 1
    return done


def check_ledger(session: Session) -> list[dict[str, Any]]:
    """Subscriptions whose cached figures differ from their entries, whose units went
    below zero or above what was sold, whose refunds passed what was paid, or that were
    used on a day more often than their daily limit."""
    totals = (
        select(
            SubscriptionEntry.subscription_id,
            func.sum(SubscriptionEntry.units).label("units"),
            func.sum(SubscriptionEntry.amount).label("amount"),
        )
        .group_by(SubscriptionEntry.subscription_id)
        .subquery()
    )
    rows = session.execute(
        select(
            Subscription.id,
            Subscription.merchant_id,
            Subscription.units_left,
            Subscription.units_total,
            Subscription.paid,
            Subscription.price_total,
            func.coalesce(totals.c.units, 0),
            func.coalesce(totals.c.amount, 0),
        ).outerjoin(totals, totals.c.subscription_id == Subscription.id)
    ).all()
    bad: dict[int, dict[str, Any]] = {}

    def flag(sub_id: int, merchant_id: int, problem: str) -> None:
        item = bad.setdefault(sub_id, {"subscription_id": sub_id, "merchant_id": merchant_id, "problems": []})
        item["problems"].append(problem)

    for sub_id, merchant_id, left, total, paid, price_total, units, amount in rows:
        if left != units:
            flag(sub_id, merchant_id, f"units_left {left} != entries {units}")
        if left < 0:
            flag(sub_id, merchant_id, f"units_left {left} < 0")
        if left > total:
            flag(sub_id, merchant_id, f"units_left {left} > units sold {total}")
        if paid != amount:
            flag(sub_id, merchant_id, f"paid {paid} != entries {amount}")
        if paid < 0 or paid > price_total:
            flag(sub_id, merchant_id, f"paid {paid} outside 0..{price_total}")
    per_day = (
        select(
            SubscriptionEntry.subscription_id.label("sid"),
            SubscriptionEntry.local_day.label("day"),
            func.sum(-SubscriptionEntry.units).label("uses"),
        )
        .where(SubscriptionEntry.kind.in_(("use", "return")))
        .group_by(SubscriptionEntry.subscription_id, SubscriptionEntry.local_day)
        .subquery()
    )
    over = session.execute(
        select(
            Subscription.id, Subscription.merchant_id, per_day.c.day, per_day.c.uses, Subscription.daily_limit
        )
        .join(per_day, per_day.c.sid == Subscription.id)
        .where(Subscription.daily_limit.is_not(None), per_day.c.uses > Subscription.daily_limit)
    ).all()
    for sub_id, merchant_id, day, uses, limit in over:
        flag(sub_id, merchant_id, f"{uses} uses on {day} > daily limit {limit}")
    return list(bad.values())
