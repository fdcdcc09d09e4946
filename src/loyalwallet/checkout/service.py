"""Quote, purchase and refund: the checkout rules applied to a locked card.

Each use case runs in one write transaction: lock the card, compute with the pure
rules (checkout.rules), write the purchase, ledger entries, card figures, outbox rows
and the idempotency record together. Any error rolls all of it back.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalwallet.cards.book import PURCHASE, CardBook, get_card, lock_card_for_purchase
from loyalwallet.cards.models import Card, Coupon
from loyalwallet.cards.views import card_view
from loyalwallet.certificates import till
from loyalwallet.checkout import rules, stamp_kinds, steps
from loyalwallet.checkout.models import Purchase, PurchaseLine, Refund
from loyalwallet.checkout.schemas import PurchaseIn, RefundIn
from loyalwallet.db import for_update, utcnow
from loyalwallet.errors import DomainError, not_found
from loyalwallet.fraud import service as fraud
from loyalwallet.merchants.actors import Actor
from loyalwallet.merchants.service import get_location
from loyalwallet.programs.models import Program
from loyalwallet.subscriptions import rules as subscription_rules
from loyalwallet.subscriptions import till as subscription_till


def _lines(body: PurchaseIn) -> list[rules.Line]:
    return [
        rules.Line(qty=i.qty, price=i.price, sku=i.sku, name=i.name, category=i.category)
        for i in body.items or []
    ]


def _find_offer(
    session: Session, card: Card, body: PurchaseIn, now: dt.datetime, *, lock: bool
) -> tuple[Coupon | None, rules.Offer | None]:
    if body.coupon is None and not body.use_reward:
        return None, None
    stmt = select(Coupon).where(Coupon.merchant_id == card.merchant_id)
    if body.use_reward:
        stmt = (
            stmt.where(Coupon.card_id == card.id, Coupon.status == "available")
            .where((Coupon.valid_until.is_(None)) | (Coupon.valid_until > now))
            .order_by(Coupon.id)
            .limit(1)
        )
    else:
        stmt = stmt.where(Coupon.code == rules.coupon_code(body.coupon or ""))
    coupon = session.scalar(for_update(stmt) if lock else stmt)
    if coupon is None:
        if body.use_reward:
            raise DomainError("coupon_invalid", "the card has no available reward")
        raise DomainError("coupon_invalid", "no such coupon")
    error = rules.coupon_error(
        status=coupon.status,
        uses_left=coupon.uses_left,
        card_id=coupon.card_id,
        program_id=coupon.program_id,
        valid_from=coupon.valid_from,
        valid_until=coupon.valid_until,
        for_card=card.id,
        for_program=card.program_id,
        now=now,
    )
    if error is not None:
        raise error
    offer = rules.Offer(
        kind=coupon.kind,
        value=coupon.value,
        sku=coupon.sku,
        category=coupon.category,
        min_amount=coupon.min_amount,
    )
    return coupon, offer


def _check_program(program: Program) -> None:
    if program.kind == "iiko":
        raise DomainError(
            "conflict",
            "this card belongs to an iiko programme: ring the purchase up in iikoFront (it scans the card)",
        )


def _check_card(actor: Actor, card: Card) -> None:
    if card.status == "blocked":
        raise DomainError("card_blocked", "this card is blocked; ask a manager")


def _location(session: Session, actor: Actor, body: PurchaseIn) -> int | None:
    location_id = body.location_id if body.location_id is not None else actor.location_id
    if location_id is not None:
        if actor.location_id is not None and body.location_id not in (None, actor.location_id):
            raise DomainError("forbidden", "this key is bound to another location")
        actor.check_location(location_id)
        # The actor's own location was checked when the key was made or the cashier chose
        # it (and locations are never deleted): only another one needs a look-up.
        if location_id != actor.location_id:
            get_location(session, actor.merchant_id, location_id)
    return location_id


def _compute(session: Session, book: CardBook, body: PurchaseIn, offer: rules.Offer | None) -> rules.Outcome:
    state = rules.CardState(
        available=book.available(),
        stamps=book.card.stamps,
        tier_spend=book.tier_spend(),
        balance=book.card.balance,
        kind_stamps=stamp_kinds.held(book),
    )
    by_hand = {k.kind: k.stamps for k in body.stamps_by_kind or ()}
    return rules.compute(book.rules, state, body.amount, _lines(body), body.redeem_points, offer, by_hand)


def _outcome_view(o: rules.Outcome) -> dict[str, Any]:
    return {
        "amount": o.amount,
        "discount": o.discount,
        "tier_discount": o.tier_discount,
        "coupon_discount": o.coupon_discount,
        "points_redeemed": o.points_redeemed,
        "redeem_value": o.redeem_value,
        "to_pay": o.to_pay,
        "points_accrued": o.points_accrued,
        "stamps_added": o.stamps_added,
        "rewards_earned": o.rewards_earned,
        "tier_before": o.tier_before,
        "tier_after": o.tier_after,
    }


def quote(session: Session, actor: Actor, body: PurchaseIn) -> dict[str, Any]:
    """What the purchase would do, written nowhere (the transaction is read-only)."""
    card, program = _card_for_read(session, actor, body.card)
    _check_program(program)
    _check_card(actor, card)
    _location(session, actor, body)
    now = utcnow()
    book = CardBook(session, card, program, now)
    coupon, offer = _find_offer(session, card, body, now, lock=False)
    outcome = _compute(session, book, body, offer)
    result = _outcome_view(outcome)
    if stamp_kinds.multi(book.rules):
        result["stamp_kinds"] = stamp_kinds.outcome_view(book.rules, outcome)
    result["max_redeem_points"] = outcome.max_redeem_points
    result["points_available"] = max(0, book.available())
    result["coupon"] = coupon.code if coupon else None
    result["card"] = card_view(session, card, program, book=book)
    to_pay = outcome.to_pay
    if body.subscription is not None:
        use = subscription_till.price(
            session, card, body.subscription, _subscription_lines(body), to_pay, now, lock=False
        )
        result.update(subscription_till.answer(use, session, now))
        to_pay -= use.paid
        result["to_collect"] = to_pay
    if body.certificate is not None:
        payment = till.price(
            session,
            actor.merchant_id,
            body.certificate,
            body.certificate_amount,
            to_pay,
            now,
            lock=False,
        )
        result.update(till.answer(payment, to_pay, now))
    return result


def _subscription_lines(body: PurchaseIn) -> list[subscription_rules.Line]:
    return [
        subscription_rules.Line(price=i.price, qty=i.qty, sku=i.sku, category=i.category)
        for i in body.items or []
    ]


def _card_for_read(session: Session, actor: Actor, code: str) -> tuple[Card, Program]:
    return get_card(session, actor.merchant_id, code)


def purchase(
    session: Session,
    actor: Actor,
    body: PurchaseIn,
    idempotency_key: str | None = None,
    *,
    now: dt.datetime | None = None,
) -> tuple[int, dict[str, Any], bool]:
    """Record a purchase. Returns (status, response, replayed). `now` is the clock (the
    demo backdates its history with it); the API always leaves it to the server."""
    record_id = steps.claim_key(session, actor, "purchase", idempotency_key, body)
    if isinstance(record_id, tuple):
        return record_id[0], record_id[1], True
    now = now or utcnow()
    card, program = lock_card_for_purchase(session, actor.merchant_id, body.card, now)
    _check_program(program)
    _check_card(actor, card)
    location_id = _location(session, actor, body)
    book = CardBook(session, card, program, now)
    coupon, outcome = _price(session, book, body)
    to_pay = outcome.to_pay
    use = None
    if body.subscription is not None:  # 4. a subscription unit pays for a covered line
        use = subscription_till.price(
            session, card, body.subscription, _subscription_lines(body), to_pay, book.now, lock=True
        )
        to_pay -= use.paid
    payment = None
    if body.certificate is not None:  # 5. the certificate pays from what is left (after the card)
        payment = till.price(
            session,
            actor.merchant_id,
            body.certificate,
            body.certificate_amount,
            to_pay,
            book.now,
            lock=True,
        )
    _check_fraud(session, actor, book, outcome)
    first_purchase = card.first_purchase_at is None
    purchase_id = steps.write_purchase(session, actor, book, body, outcome, coupon, location_id)
    if use is not None:
        subscription_till.spend(session, actor, use, purchase_id, location_id, book.now)
    if payment is not None:
        till.spend(session, actor, payment, purchase_id, location_id, book.now)
    steps.use_coupon(book, coupon)
    rewards = steps.credit_purchase(book, actor, outcome, purchase_id)
    tiers = steps.count_visit(book, outcome, first_purchase)
    steps.reward_referral(session, book, actor, purchase_id, first_purchase)
    book.touch(PURCHASE)
    response = _purchase_response(session, book, body, purchase_id, outcome, coupon, rewards, location_id)
    if use is not None:
        response.update(subscription_till.answer(use, session, book.now))
        response["to_collect"] = to_pay
    if payment is not None:
        response.update(till.answer(payment, to_pay, book.now))
    steps.purchase_events(session, actor, card, response, tiers)
    steps.store_result(session, record_id, response)
    return 201, response, False


def _price(session: Session, book: CardBook, body: PurchaseIn) -> tuple[Coupon | None, rules.Outcome]:
    """The checkout order on the locked card: the coupon or reward (locked), then
    rules.compute."""
    if body.redeem_points:
        book.expire_due()  # exact spendable points before a redemption
    coupon, offer = _find_offer(session, book.card, body, book.now, lock=True)
    return coupon, _compute(session, book, body, offer)


def _check_fraud(session: Session, actor: Actor, book: CardBook, outcome: rules.Outcome) -> None:
    """Anti-fraud (own card, daily limits, bursts...): blocks with fraud_limit before
    anything is written, or records an alert that commits with the purchase."""
    fraud.check_purchase(
        session,
        actor,
        book.card,
        points_accrued=outcome.points_accrued,
        points_redeemed=outcome.points_redeemed,
        amount=outcome.amount,
        now=book.now,
    )


def _purchase_response(
    session: Session,
    book: CardBook,
    body: PurchaseIn,
    purchase_id: int,
    outcome: rules.Outcome,
    coupon: Coupon | None,
    rewards: list[int],
    location_id: int | None,
) -> dict[str, Any]:
    response = {"id": purchase_id, **_outcome_view(outcome)}
    if stamp_kinds.multi(book.rules):
        response["stamp_kinds"] = stamp_kinds.outcome_view(book.rules, outcome)
    response["rewards_issued"] = len(rewards)
    response["coupon"] = coupon.code if coupon else None
    response["external_id"] = body.external_id
    response["location_id"] = location_id
    response["created_at"] = book.now.isoformat()
    response["card"] = card_view(session, book.card, book.program, book=book)
    return response


def refund(
    session: Session,
    actor: Actor,
    purchase_id: int,
    body: RefundIn,
    idempotency_key: str | None = None,
    *,
    now: dt.datetime | None = None,
) -> tuple[int, dict[str, Any], bool]:
    """Reverse a purchase, whole or in part, in proportion. Returns (status, response,
    replayed). `now` is the clock, as for purchase."""
    record_id = steps.claim_key(session, actor, f"refund:{purchase_id}", idempotency_key, body)
    if isinstance(record_id, tuple):
        return record_id[0], record_id[1], True
    card, program, p = steps.lock_purchase(session, actor, purchase_id)
    amount, refund_lines = steps.refund_amount(session, p, body)
    outcome = steps.price_refund(p, amount)
    now = now or utcnow()
    fraud.check_refund(session, actor, card, p, amount=outcome.amount, now=now)
    refund_id = steps.write_refund(session, actor, card, p, outcome, refund_lines, body.reason, now)
    book = CardBook(session, card, program, now)
    reversed_points, stamps_removed = steps.reverse_on_card(session, book, actor, p, outcome, refund_id)
    kind_removed = stamp_kinds.reverse(book, outcome, refund_id)
    tiers = steps.retier(book)
    steps.record_refund(session, p, outcome, refund_id, reversed_points, stamps_removed)
    stamp_kinds.record(session, p, outcome, refund_id, kind_removed)
    # The certificates that paid it get their share of the money back.
    returned = till.refund(session, actor, p.id, p.to_pay, p.refunded_money, refund_id, now)
    # A purchase refunded in full gives its subscription use back.
    units = subscription_till.refund(
        session,
        actor,
        p.id,
        p.to_pay,
        p.refunded_money - outcome.money_returned,
        p.refunded_money,
        p.refunded_amount >= p.amount,
        now,
    )
    book.touch("refund")
    response = steps.refund_response(
        session, book, p, outcome, refund_id, refund_lines, reversed_points, stamps_removed
    )
    if stamp_kinds.multi(book.rules):
        response["stamp_kinds"] = stamp_kinds.refund_view(stamps_removed, kind_removed)
    if returned is not None:
        response.update(returned)
        response["cash_returned"] = outcome.money_returned - returned["certificate_returned"]
    if units is not None:
        response.update(units)
        cash = response.get("cash_returned", outcome.money_returned)
        response["cash_returned"] = cash - units["subscription_share"]
    steps.refund_events(session, actor, card, p, outcome, refund_id, body.reason, tiers)
    steps.store_result(session, record_id, response)
    return 201, response, False


def purchase_view(session: Session, p: Purchase) -> dict[str, Any]:
    lines = session.scalars(
        select(PurchaseLine).where(PurchaseLine.purchase_id == p.id).order_by(PurchaseLine.position)
    ).all()
    refunds = session.scalars(select(Refund).where(Refund.purchase_id == p.id).order_by(Refund.id)).all()
    card_code = session.scalar(select(Card.code).where(Card.id == p.card_id))
    return {
        "id": p.id,
        "card": card_code,
        "program_id": p.program_id,
        "location_id": p.location_id,
        # Who rang it up (a staff member or an API key): purchases are their own audit trail.
        "actor_type": p.actor_type,
        "actor_id": p.actor_id,
        "external_id": p.external_id,
        "amount": p.amount,
        "discount": p.discount,
        "tier_discount": p.tier_discount,
        "coupon_discount": p.coupon_discount,
        "points_redeemed": p.points_redeemed,
        "redeem_value": p.redeem_value,
        "to_pay": p.to_pay,
        "points_accrued": p.points_accrued,
        "stamps_added": p.stamps_added,
        "status": p.status,
        "refunded_amount": p.refunded_amount,
        "refundable": p.amount - p.refunded_amount,
        "items": [
            {
                "line": ln.position,
                "sku": ln.sku,
                "name": ln.name,
                "category": ln.category,
                "qty": ln.qty,
                "price": ln.price,
                "refunded_qty": ln.refunded_qty,
            }
            for ln in lines
        ],
        "refunds": [
            {
                "id": r.id,
                "amount": r.amount,
                "points_reversed": r.points_reversed,
                "points_returned": r.points_returned,
                "created_at": r.created_at.isoformat(),
            }
            for r in refunds
        ],
        "created_at": p.created_at.isoformat(),
        # Stamp kinds 2..4 of a card with several (only when the purchase gave some).
        **(
            {
                "stamp_kinds": [
                    {"kind": int(k), "stamps_added": v[0], "stamps_reversed": v[1]}
                    for k, v in sorted(p.kind_stamps.items())
                ]
            }
            if p.kind_stamps
            else {}
        ),
    }


def get_purchase(session: Session, actor: Actor, purchase_id: int) -> Purchase:
    p = session.get(Purchase, purchase_id)
    if p is None or p.merchant_id != actor.merchant_id:
        raise not_found("purchase")
    return p
