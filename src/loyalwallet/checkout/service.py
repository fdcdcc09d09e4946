"""Quote, purchase and refund: the checkout rules applied to a locked card.

Each use case runs in one write transaction: lock the card, compute with the pure
rules (checkout.rules), write the purchase, ledger entries, card figures, outbox rows
and the idempotency record together. Any error rolls all of it back.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from loyalwallet.cards.book import CardBook, get_card, lock_card, lock_card_by_id
from loyalwallet.cards.models import Card, Coupon, LedgerEntry
from loyalwallet.cards.views import card_view
from loyalwallet.checkout import idempotency, rules
from loyalwallet.checkout.models import Purchase, PurchaseLine, Refund
from loyalwallet.checkout.schemas import PurchaseIn, RefundIn
from loyalwallet.db import for_update, utcnow
from loyalwallet.errors import DomainError, not_found
from loyalwallet.fraud import service as fraud
from loyalwallet.merchants.actors import Actor
from loyalwallet.merchants.service import audit, get_location
from loyalwallet.outbox.service import emit_event, enqueue
from loyalwallet.programs.models import Program
from loyalwallet.programs.rules import BonusRules

_INSERT_PURCHASE = insert(Purchase.__table__).returning(Purchase.__table__.c.id)


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
        # Printed codes are grouped ("ABCDE-FGHJK"); the stored form has no spaces or dashes.
        code = re.sub(r"[\s-]+", "", body.coupon or "").upper()
        stmt = stmt.where(Coupon.code == code)
    coupon = session.scalar(for_update(stmt) if lock else stmt)
    if coupon is None:
        if body.use_reward:
            raise DomainError("coupon_invalid", "the card has no available reward")
        raise DomainError("coupon_invalid", "no such coupon")
    if coupon.status != "available" or coupon.uses_left <= 0:
        raise DomainError("coupon_invalid", "this coupon was already used")
    if coupon.card_id is not None and coupon.card_id != card.id:
        raise DomainError("coupon_invalid", "this coupon belongs to another card")
    if coupon.program_id is not None and coupon.program_id != card.program_id:
        raise DomainError("coupon_invalid", "this coupon is for another program")
    if coupon.valid_from is not None and coupon.valid_from > now:
        raise DomainError("coupon_invalid", "this coupon is not valid yet")
    if coupon.valid_until is not None and coupon.valid_until <= now:
        raise DomainError("coupon_invalid", "this coupon has expired")
    offer = rules.Offer(
        kind=coupon.kind,
        value=coupon.value,
        sku=coupon.sku,
        category=coupon.category,
        min_amount=coupon.min_amount,
    )
    return coupon, offer


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
    )
    return rules.compute(book.rules, state, body.amount, _lines(body), body.redeem_points, offer)


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
    _check_card(actor, card)
    _location(session, actor, body)
    now = utcnow()
    book = CardBook(session, card, program, now)
    coupon, offer = _find_offer(session, card, body, now, lock=False)
    outcome = _compute(session, book, body, offer)
    result = _outcome_view(outcome)
    result["max_redeem_points"] = outcome.max_redeem_points
    result["points_available"] = max(0, book.available())
    result["coupon"] = coupon.code if coupon else None
    result["card"] = card_view(session, card, program, book=book)
    return result


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
    record_id = None
    if idempotency_key is not None:
        claimed = idempotency.claim(
            session,
            actor.merchant_id,
            "purchase",
            idempotency_key,
            idempotency.request_hash(body.model_dump()),
        )
        if isinstance(claimed, tuple):
            return claimed[0], claimed[1], True
        record_id = claimed

    card, program = lock_card(session, actor.merchant_id, body.card)
    _check_card(actor, card)
    location_id = _location(session, actor, body)
    now = now or utcnow()
    book = CardBook(session, card, program, now)
    if body.redeem_points:
        book.expire_due()  # exact spendable points before a redemption
    coupon, offer = _find_offer(session, card, body, now, lock=True)
    outcome = _compute(session, book, body, offer)
    # Anti-fraud (own card, daily limits, bursts...): blocks with fraud_limit before
    # anything is written, or records an alert that commits with the purchase.
    fraud.check_purchase(
        session,
        actor,
        card,
        points_accrued=outcome.points_accrued,
        points_redeemed=outcome.points_redeemed,
        amount=outcome.amount,
        now=now,
    )
    first_purchase = card.first_purchase_at is None

    purchase_id = session.execute(
        _INSERT_PURCHASE,
        {
            "merchant_id": actor.merchant_id,
            "card_id": card.id,
            "program_id": program.id,
            "location_id": location_id,
            "actor_type": actor.kind,
            "actor_id": actor.id,
            "external_id": body.external_id,
            "amount": outcome.amount,
            "tier_discount": outcome.tier_discount,
            "coupon_discount": outcome.coupon_discount,
            "discount": outcome.discount,
            "points_redeemed": outcome.points_redeemed,
            "redeem_value": outcome.redeem_value,
            "to_pay": outcome.to_pay,
            "accrual_base": outcome.accrual_base,
            "points_accrued": outcome.points_accrued,
            "stamps_added": outcome.stamps_added,
            "spend_added": outcome.spend_added,
            "coupon_id": coupon.id if coupon else None,
            "tier_before": outcome.tier_before,
            "tier_after": outcome.tier_after,
            "status": "completed",
            "created_at": now,
        },
    ).scalar_one()
    if body.items:
        session.execute(
            insert(PurchaseLine.__table__),
            [
                {
                    "merchant_id": actor.merchant_id,
                    "purchase_id": purchase_id,
                    "position": i,
                    "sku": line.sku,
                    "name": line.name,
                    "category": line.category,
                    "qty": line.qty,
                    "price": line.price,
                    "refunded_qty": 0,
                }
                for i, line in enumerate(body.items)
            ],
        )

    if coupon is not None:
        book.rewards_touched = True
        coupon.uses_left -= 1
        if coupon.uses_left <= 0:
            coupon.status = "used"
        coupon.used_at = now

    book.redeem(outcome.points_redeemed, actor=actor, purchase_id=purchase_id)
    rules_ = book.rules
    if outcome.points_accrued:
        pending_hours = rules_.pending_hours if isinstance(rules_, BonusRules) else 0
        book.credit(
            "accrual",
            outcome.points_accrued,
            actor=actor,
            purchase_id=purchase_id,
            pending_hours=pending_hours,
        )
    rewards = book.add_stamps("purchase", outcome.stamps_added, purchase_id=purchase_id)

    book.set(spend=card.spend + outcome.spend_added, visits=card.visits + 1, last_visit_at=now)
    if first_purchase:
        book.set(first_purchase_at=now)
    tier_before, tier_after = book.retier(
        card.spend if not getattr(rules_, "tier_period_days", None) else None
    )

    # 8. Referral: the friend is credited here; the referrer in its own transaction
    # through the outbox, so this one never locks two cards.
    if (
        first_purchase
        and card.referrer_card_id is not None
        and not card.referral_rewarded
        and isinstance(rules_, BonusRules)
        and rules_.referral_points
    ):
        book.set(referral_rewarded=True)
        book.credit(
            "referral",
            rules_.referral_points,
            actor=actor,
            purchase_id=purchase_id,
            reason="referral: your first purchase",
        )
        enqueue(
            session,
            actor.merchant_id,
            "referral.reward",
            {"card_id": card.referrer_card_id, "friend_card_id": card.id, "points": rules_.referral_points},
        )

    book.touch("purchase")
    response = {"id": purchase_id, **_outcome_view(outcome)}
    response["rewards_issued"] = len(rewards)
    response["coupon"] = coupon.code if coupon else None
    response["external_id"] = body.external_id
    response["location_id"] = location_id
    response["created_at"] = now.isoformat()
    response["card"] = card_view(session, card, program, book=book)
    emit_event(
        session,
        actor.merchant_id,
        "purchase.created",
        {
            k: response[k]
            for k in (
                "id",
                "amount",
                "discount",
                "points_redeemed",
                "to_pay",
                "points_accrued",
                "stamps_added",
                "external_id",
            )
        }
        | {"card": card.code},
    )
    if tier_before != tier_after:
        emit_event(
            session,
            actor.merchant_id,
            "card.tier_changed",
            {"card": card.code, "from": tier_before, "to": tier_after},
        )
    if record_id is not None:
        idempotency.store(session, record_id, 201, response)
    return 201, response, False


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
    record_id = None
    if idempotency_key is not None:
        claimed = idempotency.claim(
            session,
            actor.merchant_id,
            f"refund:{purchase_id}",
            idempotency_key,
            idempotency.request_hash(body.model_dump()),
        )
        if isinstance(claimed, tuple):
            return claimed[0], claimed[1], True
        record_id = claimed

    card_id = session.scalar(
        select(Purchase.card_id).where(Purchase.id == purchase_id, Purchase.merchant_id == actor.merchant_id)
    )
    if card_id is None:
        raise not_found("purchase")
    # Lock order everywhere: the card first, then its purchase.
    card, program = lock_card_by_id(session, card_id)
    p = session.execute(for_update(select(Purchase).where(Purchase.id == purchase_id))).scalar_one()
    actor.check_location(p.location_id)

    refund_lines: list[dict[str, int]] = []
    if body.lines is not None:
        lines = {
            line.position: line
            for line in session.scalars(select(PurchaseLine).where(PurchaseLine.purchase_id == p.id))
        }
        amount = 0
        for item in body.lines:
            line = lines.get(item.line)
            if line is None:
                raise DomainError("validation_error", f"the purchase has no line {item.line}", field="lines")
            if item.qty > line.qty - line.refunded_qty:
                raise DomainError(
                    "refund_exceeds_purchase",
                    f"line {item.line}: {line.qty - line.refunded_qty} left to refund, {item.qty} asked",
                )
            line.refunded_qty += item.qty
            amount += item.qty * line.price
            refund_lines.append({"line": item.line, "qty": item.qty, "amount": item.qty * line.price})
        if amount == 0:
            raise DomainError("validation_error", "the lines to refund are worth nothing", field="lines")
    else:
        amount = body.amount if body.amount is not None else p.amount - p.refunded_amount
        if amount == 0:
            raise DomainError(
                "refund_exceeds_purchase", "this purchase is already fully refunded", refundable=0
            )

    totals = rules.PurchaseTotals(
        amount=p.amount,
        to_pay=p.to_pay,
        points_accrued=p.points_accrued,
        points_redeemed=p.points_redeemed,
        stamps_added=p.stamps_added,
        spend_added=p.spend_added,
        refunded_amount=p.refunded_amount,
        refunded_money=p.refunded_money,
        points_reversed=p.points_reversed,
        points_returned=p.points_returned,
        stamps_reversed=p.stamps_reversed,
        spend_reversed=p.spend_reversed,
    )
    outcome = rules.refund(totals, amount)
    now = now or utcnow()
    fraud.check_refund(session, actor, card, p, amount=outcome.amount, now=now)
    refund_id = session.execute(
        insert(Refund.__table__)
        .values(
            merchant_id=actor.merchant_id,
            purchase_id=p.id,
            card_id=card.id,
            amount=outcome.amount,
            money_returned=outcome.money_returned,
            points_reversed=0,
            points_returned=outcome.points_returned,
            stamps_reversed=0,
            spend_reversed=outcome.spend_reversed,
            lines=refund_lines,
            reason=body.reason,
            actor_type=actor.kind,
            actor_id=actor.id,
            created_at=now,
        )
        .returning(Refund.__table__.c.id)
    ).scalar_one()

    book = CardBook(session, card, program, now)
    book.expire_due()
    # Redeemed points come back first, so a clamped reversal has them to take from.
    book.credit(
        "refund",
        outcome.points_returned,
        actor=actor,
        purchase_id=p.id,
        refund_id=refund_id,
        reason="points paid for a refunded purchase",
    )
    allow_debt = not isinstance(book.rules, BonusRules) or book.rules.refund_debt == "allow"
    accrual_lot = session.scalar(
        select(LedgerEntry.id).where(LedgerEntry.purchase_id == p.id, LedgerEntry.kind == "accrual")
    )
    reversed_points = book.take_back(
        "refund",
        outcome.points_reversed,
        allow_debt=allow_debt,
        actor=actor,
        prefer_lot=accrual_lot,
        purchase_id=p.id,
        refund_id=refund_id,
        reason="points accrued on a refunded purchase",
    )
    stamps_removed = book.remove_stamps(outcome.stamps_reversed, refund_id=refund_id, reason="refund")
    book.set(spend=card.spend - outcome.spend_reversed)
    tier_before, tier_after = book.retier(
        card.spend if not getattr(book.rules, "tier_period_days", None) else None
    )

    p.refunded_amount += outcome.amount
    p.refunded_money += outcome.money_returned
    p.points_reversed += outcome.points_reversed
    p.points_returned += outcome.points_returned
    p.stamps_reversed += outcome.stamps_reversed
    p.spend_reversed += outcome.spend_reversed
    p.status = "refunded" if p.refunded_amount == p.amount else "partially_refunded"
    session.execute(
        update(Refund)
        .where(Refund.id == refund_id)
        .values(points_reversed=reversed_points, stamps_reversed=stamps_removed)
    )
    book.touch("refund")
    response = {
        "id": refund_id,
        "purchase_id": p.id,
        "amount": outcome.amount,
        "money_returned": outcome.money_returned,
        "points_reversed": reversed_points,
        "points_forgiven": outcome.points_reversed - reversed_points,
        "points_returned": outcome.points_returned,
        "stamps_reversed": stamps_removed,
        "lines": refund_lines,
        "purchase_status": p.status,
        "refundable": p.amount - p.refunded_amount,
        "created_at": now.isoformat(),
        "card": card_view(session, card, program, book=book),
    }
    audit(
        session,
        actor,
        "purchase.refund",
        "purchase",
        p.id,
        {"refund_id": refund_id, "amount": outcome.amount, "card": card.code, "reason": body.reason},
    )
    emit_event(
        session,
        actor.merchant_id,
        "purchase.refunded",
        {"purchase_id": p.id, "refund_id": refund_id, "amount": outcome.amount, "card": card.code},
    )
    if tier_before != tier_after:
        emit_event(
            session,
            actor.merchant_id,
            "card.tier_changed",
            {"card": card.code, "from": tier_before, "to": tier_after},
        )
    if record_id is not None:
        idempotency.store(session, record_id, 201, response)
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
    }


def get_purchase(session: Session, actor: Actor, purchase_id: int) -> Purchase:
    p = session.get(Purchase, purchase_id)
    if p is None or p.merchant_id != actor.merchant_id:
        raise not_found("purchase")
    return p
