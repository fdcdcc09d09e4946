"""Subscriptions: programmes (plans), a sale at the till, a use without a purchase,
renewal, refund of the unused part, and what the card shows.

A use inside a purchase is in subscriptions.till, called by the checkout. Every write
here is one transaction: lock the card, then the subscription, move units (and money)
through subscriptions.ledger, emit `subscription.*` events, tell the card's wallets
(CardBook.touch) and store the idempotent answer.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalwallet.cards.book import CardBook, lock_card, lock_card_by_id
from loyalwallet.cards.models import Card
from loyalwallet.cards.views import CardNote
from loyalwallet.checkout import idempotency
from loyalwallet.db import utcnow
from loyalwallet.errors import DomainError, Explained
from loyalwallet.merchants.actors import Actor
from loyalwallet.merchants.service import audit, get_location, get_merchant
from loyalwallet.outbox.service import emit_event
from loyalwallet.programs.models import Program
from loyalwallet.subscriptions import ledger, rules
from loyalwallet.subscriptions.models import Subscription, SubscriptionEntry, SubscriptionPlan
from loyalwallet.subscriptions.schemas import PlanChangeIn, PlanIn, RefundIn, RenewIn, SaleIn, UseIn

# --- plans ---------------------------------------------------------------------------------


def plan_view(plan: SubscriptionPlan) -> dict[str, Any]:
    return {
        "id": plan.id,
        "name": plan.name,
        "units": plan.units,
        "period_days": plan.period_days,
        "daily_limit": plan.daily_limit,
        "price": plan.price,
        "currency": plan.currency,
        "covers": plan.covers or {"skus": [], "categories": []},
        "refund_policy": plan.refund_policy,
        "status": plan.status,
        "created_at": plan.created_at.isoformat(),
    }


def create_plan(session: Session, actor: Actor, body: PlanIn) -> dict[str, Any]:
    merchant = get_merchant(session, actor.merchant_id)
    plan = SubscriptionPlan(
        merchant_id=actor.merchant_id,
        name=body.name.strip(),
        units=body.units,
        period_days=body.period_days,
        daily_limit=body.daily_limit,
        price=body.price,
        currency=merchant.currency,
        covers=rules.validate_covers(body.covers.model_dump()),
        refund_policy=body.refund_policy,
    )
    session.add(plan)
    session.flush()
    audit(session, actor, "subscription_plan.create", "subscription_plan", plan.id, {"name": plan.name})
    return plan_view(plan)


def get_plan(session: Session, merchant_id: int, plan_id: int) -> SubscriptionPlan:
    plan = session.get(SubscriptionPlan, plan_id)
    if plan is None or plan.merchant_id != merchant_id:
        raise DomainError("not_found", "subscription plan not found", field="plan_id")
    return plan


def change_plan(session: Session, actor: Actor, plan_id: int, body: PlanChangeIn) -> dict[str, Any]:
    """Name, price (for later sales) and archiving; what was sold keeps its terms."""
    plan = get_plan(session, actor.merchant_id, plan_id)
    changes = body.model_dump(exclude_none=True)
    for name, value in changes.items():
        setattr(plan, name, value)
    plan.updated_at = utcnow()
    audit(session, actor, "subscription_plan.change", "subscription_plan", plan.id, changes)
    return plan_view(plan)


def list_plans(session: Session, merchant_id: int, *, active_only: bool = False) -> list[dict[str, Any]]:
    stmt = select(SubscriptionPlan).where(SubscriptionPlan.merchant_id == merchant_id)
    if active_only:
        stmt = stmt.where(SubscriptionPlan.status == "active")
    return [plan_view(p) for p in session.scalars(stmt.order_by(SubscriptionPlan.id))]


# --- subscriptions -----------------------------------------------------------------------


def view(session: Session, sub: Subscription, now: dt.datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    day = ledger.local_day(session, sub.merchant_id, now)
    card_code = session.scalar(select(Card.code).where(Card.id == sub.card_id))
    live = sub.status == "active" and sub.ends_at > now
    return {
        "id": sub.id,
        "plan_id": sub.plan_id,
        "card": card_code,
        "name": sub.name,
        "status": sub.status if sub.status != "active" or live else "expired",
        "units_left": sub.units_left,
        "units_total": sub.units_total,
        "daily_limit": sub.daily_limit,
        "used_today": ledger.used_on(session, sub.id, day),
        "covers": sub.covers or {"skus": [], "categories": []},
        "refund_policy": sub.refund_policy,
        "refundable": rules.refund_amount(sub.refund_policy, sub.paid, sub.units_left, sub.units_total, None)
        if sub.status != "refunded"
        else 0,
        "price_total": sub.price_total,
        "paid": sub.paid,
        "currency": sub.currency,
        "starts_at": sub.starts_at.isoformat(),
        "ends_at": sub.ends_at.isoformat(),
        "created_at": sub.created_at.isoformat(),
    }


def _claim(
    session: Session, actor: Actor, scope: str, key: str | None, body: BaseModel
) -> int | tuple[int, dict[str, Any]] | None:
    if key is None:
        return None
    return idempotency.claim(
        session, actor.merchant_id, scope, key, idempotency.request_hash(body.model_dump())
    )


def _store(session: Session, record: int | None, response: dict[str, Any]) -> None:
    if record is not None:
        idempotency.store(session, record, 201, response)


def _location(session: Session, actor: Actor, location_id: int | None) -> int | None:
    if location_id is None:
        return actor.location_id
    if actor.location_id is not None and location_id != actor.location_id:
        raise DomainError("forbidden", "this key is bound to another location")
    actor.check_location(location_id)
    get_location(session, actor.merchant_id, location_id)
    return location_id


def _usable_card(card: Card) -> None:
    if card.status == "blocked":
        raise DomainError("card_blocked", "this card is blocked; ask a manager")


def _lock(session: Session, actor: Actor, subscription_id: int) -> tuple[Subscription, Card, Program]:
    """The subscription and its card, locked in the house order (the card first)."""
    card_id = session.scalar(
        select(Subscription.card_id).where(
            Subscription.id == subscription_id, Subscription.merchant_id == actor.merchant_id
        )
    )
    if card_id is None:
        raise ledger.not_found()
    card, program = lock_card_by_id(session, card_id)
    return ledger.get(session, actor.merchant_id, subscription_id, lock=True), card, program


def sell(
    session: Session, actor: Actor, body: SaleIn, key: str | None = None
) -> tuple[int, dict[str, Any], bool]:
    """Sell a plan on a guest's card for the plan's price: units for the period."""
    record = _claim(session, actor, "subscription.sell", key, body)
    if isinstance(record, tuple):
        return record[0], record[1], True
    now = utcnow()
    plan = get_plan(session, actor.merchant_id, body.plan_id)
    if plan.status != "active":
        raise DomainError("conflict", "this subscription plan is archived", field="plan_id")
    location_id = _location(session, actor, body.location_id)
    card, program = lock_card(session, actor.merchant_id, body.card)
    _usable_card(card)
    running = session.scalar(
        select(Subscription.id).where(
            Subscription.card_id == card.id,
            Subscription.plan_id == plan.id,
            Subscription.status == "active",
            Subscription.ends_at > now,
        )
    )
    if running is not None:
        raise Explained(
            "subscription_active",
            "this card already has subscription {running} of this plan: renew it instead",
            running=running,
            extra={"subscription_id": running},
        )
    sub = Subscription(
        merchant_id=actor.merchant_id,
        plan_id=plan.id,
        card_id=card.id,
        name=plan.name,
        currency=plan.currency,
        daily_limit=plan.daily_limit,
        covers=plan.covers or {},
        refund_policy=plan.refund_policy,
        units_total=0,
        units_left=0,
        price_total=0,
        paid=0,
        status="active",
        starts_at=now,
        ends_at=rules.period_end(now, plan.period_days),
        location_id=location_id,
        actor_type=actor.kind,
        actor_id=actor.id,
        external_id=body.external_id,
        created_at=now,
        updated_at=now,
    )
    session.add(sub)
    session.flush()
    day = ledger.local_day(session, actor.merchant_id, now)
    ledger.move(
        session, sub, "sale", plan.units, plan.price, actor, now, day,
        location_id=location_id, external_id=body.external_id,
    )  # fmt: skip
    emit_event(session, actor.merchant_id, "subscription.sold", ledger.event_payload(sub, amount=plan.price))
    CardBook(session, card, program, now).touch("subscription")
    response = view(session, sub, now)
    _store(session, record, response)
    return 201, response, False


def use(
    session: Session, actor: Actor, subscription_id: int, body: UseIn, key: str | None = None
) -> tuple[int, dict[str, Any], bool]:
    """One unit consumed with no purchase (the cashier hands the cup over)."""
    record = _claim(session, actor, f"subscription.use:{subscription_id}", key, body)
    if isinstance(record, tuple):
        return record[0], record[1], True
    now = utcnow()
    location_id = _location(session, actor, body.location_id)
    sub, card, program = _lock(session, actor, subscription_id)
    _usable_card(card)
    use_id = consume(session, actor, sub, now, location_id=location_id, external_id=body.external_id)
    CardBook(session, card, program, now).touch("subscription")
    response = {"use_id": use_id, "subscription": view(session, sub, now)}
    _store(session, record, response)
    return 201, response, False


def consume(session: Session, actor: Actor, sub: Subscription, now: dt.datetime, **refs: Any) -> int:
    """Check and write one use on a locked subscription; `subscription.used`."""
    day = ledger.local_day(session, sub.merchant_id, now)
    used = ledger.used_on(session, sub.id, day)
    rules.check_usable(sub.status, sub.starts_at, sub.ends_at, sub.units_left, sub.daily_limit, used, now)
    use_id = ledger.move(session, sub, "use", -1, 0, actor, now, day, **refs)
    emit_event(
        session,
        sub.merchant_id,
        "subscription.used",
        ledger.event_payload(sub, use_id=use_id, purchase_id=refs.get("purchase_id")),
    )
    return use_id


def renew(
    session: Session, actor: Actor, subscription_id: int, body: RenewIn, key: str | None = None
) -> tuple[int, dict[str, Any], bool]:
    """Another period at the plan's current price: its units added, the end moved one
    period past the current end (or from now when it has ended)."""
    record = _claim(session, actor, f"subscription.renew:{subscription_id}", key, body)
    if isinstance(record, tuple):
        return record[0], record[1], True
    now = utcnow()
    location_id = _location(session, actor, body.location_id)
    sub, card, program = _lock(session, actor, subscription_id)
    _usable_card(card)
    if sub.status == "refunded":
        raise DomainError("subscription_unavailable", "the subscription was refunded")
    plan = get_plan(session, actor.merchant_id, sub.plan_id)
    if plan.status != "active":
        raise DomainError("conflict", "this subscription plan is archived", field="plan_id")
    if sub.status == "active" and sub.ends_at <= now:
        ledger.expire(session, sub, now)  # what is left of the ended period is not carried over
    sub.ends_at = rules.renewal_window(sub.ends_at, sub.status, now, plan.period_days)
    sub.status = "active"
    day = ledger.local_day(session, actor.merchant_id, now)
    ledger.move(
        session, sub, "renewal", plan.units, plan.price, actor, now, day,
        location_id=location_id, external_id=body.external_id,
    )  # fmt: skip
    emit_event(
        session, actor.merchant_id, "subscription.renewed", ledger.event_payload(sub, amount=plan.price)
    )
    CardBook(session, card, program, now).touch("subscription")
    response = view(session, sub, now)
    _store(session, record, response)
    return 201, response, False


def refund(
    session: Session, actor: Actor, subscription_id: int, body: RefundIn, key: str | None = None
) -> tuple[int, dict[str, Any], bool]:
    """Cancel it: the units left are written off and money given back (the plan's policy,
    or the amount asked — never more than was paid)."""
    record = _claim(session, actor, f"subscription.refund:{subscription_id}", key, body)
    if isinstance(record, tuple):
        return record[0], record[1], True
    now = utcnow()
    sub, card, program = _lock(session, actor, subscription_id)
    if sub.status == "refunded":
        raise DomainError("subscription_unavailable", "the subscription was already refunded")
    amount = rules.refund_amount(sub.refund_policy, sub.paid, sub.units_left, sub.units_total, body.amount)
    left = sub.units_left
    day = ledger.local_day(session, actor.merchant_id, now)
    ledger.move(session, sub, "refund", -left, -amount, actor, now, day)
    sub.status = "refunded"
    emit_event(
        session,
        actor.merchant_id,
        "subscription.refunded",
        ledger.event_payload(sub, amount=amount, units_cancelled=left),
    )
    audit(
        session, actor, "subscription.refund", "subscription", sub.id,
        {"amount": amount, "units": left, "reason": body.reason},
    )  # fmt: skip
    CardBook(session, card, program, now).touch("subscription")
    response = {"refunded": amount, "units_cancelled": left, "subscription": view(session, sub, now)}
    _store(session, record, response)
    return 201, response, False


def get(session: Session, actor: Actor, subscription_id: int) -> dict[str, Any]:
    return view(session, ledger.get(session, actor.merchant_id, subscription_id, lock=False))


def of_card(session: Session, actor: Actor, card_id: int, *, live_only: bool = False) -> list[dict[str, Any]]:
    stmt = select(Subscription).where(
        Subscription.card_id == card_id, Subscription.merchant_id == actor.merchant_id
    )
    if live_only:
        stmt = stmt.where(Subscription.status == "active")
    now = utcnow()
    return [view(session, s, now) for s in session.scalars(stmt.order_by(Subscription.id.desc()))]


def list_subscriptions(
    session: Session, actor: Actor, status: str | None, limit: int
) -> list[dict[str, Any]]:
    stmt = select(Subscription).where(Subscription.merchant_id == actor.merchant_id)
    if status:
        stmt = stmt.where(Subscription.status == status)
    now = utcnow()
    return [
        view(session, s, now) for s in session.scalars(stmt.order_by(Subscription.id.desc()).limit(limit))
    ]


def entries(session: Session, sub: Subscription) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(SubscriptionEntry)
        .where(SubscriptionEntry.subscription_id == sub.id)
        .order_by(SubscriptionEntry.id.desc())
    )
    return [
        {
            "id": e.id,
            "kind": e.kind,
            "units": e.units,
            "amount": e.amount,
            "local_day": e.local_day.isoformat(),
            "purchase_id": e.purchase_id,
            "use_id": e.use_id,
            "created_at": e.created_at.isoformat(),
        }
        for e in rows
    ]


def card_notes(session: Session, card: Card) -> list[CardNote]:
    """cards.views.CARD_NOTES: the card's running subscriptions (what is left, until when)
    for the web card, the Apple pass and the Google object."""
    now = utcnow()
    rows = session.execute(
        select(Subscription.id, Subscription.name, Subscription.units_left, Subscription.ends_at)
        .where(Subscription.card_id == card.id, Subscription.status == "active", Subscription.ends_at > now)
        .order_by(Subscription.id)
    ).all()
    return [
        CardNote(key=f"subscription_{sid}", title=name, left=left, until=ends)
        for sid, name, left, ends in rows
    ]
