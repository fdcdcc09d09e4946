"""The steps of a purchase and of a refund (checkout.service), in the order they run.

Each step does what its name says on a card locked by the caller's transaction, with
the statements it always did: this is the POS's hot path (bench/checkout.py), and no
step adds a statement or a round trip.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from loyalwallet.cards.book import CardBook, lock_card_by_id
from loyalwallet.cards.models import Card, Coupon, LedgerEntry
from loyalwallet.cards.views import card_view
from loyalwallet.checkout import idempotency, rules, stamp_kinds
from loyalwallet.checkout.models import Purchase, PurchaseLine, Refund
from loyalwallet.checkout.schemas import PurchaseIn, RefundIn
from loyalwallet.db import for_update
from loyalwallet.errors import DomainError, Explained, not_found
from loyalwallet.merchants.actors import Actor
from loyalwallet.merchants.service import audit
from loyalwallet.outbox.service import emit_event, enqueue
from loyalwallet.programs.models import Program
from loyalwallet.programs.rules import BonusRules

_INSERT_PURCHASE = insert(Purchase.__table__).returning(Purchase.__table__.c.id)

# What `purchase.created` carries of the purchase's response.
_PURCHASE_EVENT_FIELDS = (
    "id",
    "amount",
    "discount",
    "points_redeemed",
    "to_pay",
    "points_accrued",
    "stamps_added",
    "external_id",
)
PURCHASE_EVENT_FIELDS = _PURCHASE_EVENT_FIELDS  # checkout.fast builds the same event


# --- both ---------------------------------------------------------------------------------


def claim_key(
    session: Session, actor: Actor, scope: str, key: str | None, body: BaseModel
) -> int | tuple[int, dict[str, Any]] | None:
    """Claim the Idempotency-Key: None without a key, the record to store the result in,
    or the (status, response) stored for this key and body (a replay)."""
    if key is None:
        return None
    return idempotency.claim(
        session, actor.merchant_id, scope, key, idempotency.request_hash(body.model_dump())
    )


def store_result(session: Session, record_id: int | None, response: dict[str, Any]) -> None:
    """Store the response under the claimed Idempotency-Key, if there was one."""
    if record_id is not None:
        idempotency.store(session, record_id, 201, response)


def retier(book: CardBook) -> tuple[str | None, str | None]:
    """Recalculate the tier after the spend changed; returns (before, after)."""
    card = book.card
    return book.retier(card.spend if not getattr(book.rules, "tier_period_days", None) else None)


def tier_event(session: Session, actor: Actor, card: Card, tiers: tuple[str | None, str | None]) -> None:
    tier_before, tier_after = tiers
    if tier_before != tier_after:
        emit_event(
            session,
            actor.merchant_id,
            "card.tier_changed",
            {"card": card.code, "from": tier_before, "to": tier_after},
        )


# --- purchase -----------------------------------------------------------------------------


def write_purchase(
    session: Session,
    actor: Actor,
    book: CardBook,
    body: PurchaseIn,
    outcome: rules.Outcome,
    coupon: Coupon | None,
    location_id: int | None,
) -> int:
    """Insert the purchase (and its lines); returns its id."""
    card = book.card
    purchase_id: int = session.execute(
        _INSERT_PURCHASE,
        {
            "merchant_id": actor.merchant_id,
            "card_id": card.id,
            "program_id": book.program.id,
            "location_id": location_id,
            "actor_type": actor.kind,
            "actor_id": actor.id,
            "external_id": body.external_id,
            **outcome.purchase_figures(),
            "kind_stamps": stamp_kinds.purchase_column(outcome),
            "coupon_id": coupon.id if coupon else None,
            "status": "completed",
            "created_at": book.now,
        },
    ).scalar_one()
    if body.items:
        session.execute(insert(PurchaseLine.__table__), line_rows(actor.merchant_id, purchase_id, body))
    return purchase_id


def line_rows(merchant_id: int, purchase_id: int, body: PurchaseIn) -> list[dict[str, Any]]:
    """The check's lines as purchase_lines rows (the general and the fast path write these)."""
    return [
        {
            "merchant_id": merchant_id,
            "purchase_id": purchase_id,
            "position": i,
            "sku": line.sku,
            "name": line.name,
            "category": line.category,
            "qty": line.qty,
            "price": line.price,
            "refunded_qty": 0,
        }
        for i, line in enumerate(body.items or [])
    ]


def use_coupon(book: CardBook, coupon: Coupon | None) -> None:
    """One use of the coupon or reward the purchase applied."""
    if coupon is None:
        return
    book.rewards_touched = True
    coupon.uses_left -= 1
    if coupon.uses_left <= 0:
        coupon.status = "used"
    coupon.used_at = book.now


def credit_purchase(book: CardBook, actor: Actor, outcome: rules.Outcome, purchase_id: int) -> list[int]:
    """Points redeemed and accrued, stamps added; returns the rewards the stamps issued."""
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
    issued = book.add_stamps("purchase", outcome.stamps_added, purchase_id=purchase_id)
    return issued + stamp_kinds.credit(book, outcome, purchase_id)


def count_visit(
    book: CardBook, outcome: rules.Outcome, first_purchase: bool
) -> tuple[str | None, str | None]:
    """Spend, visits and dates on the card, then the tier; returns (tier before, after)."""
    card, now = book.card, book.now
    book.set(spend=card.spend + outcome.spend_added, visits=card.visits + 1, last_visit_at=now)
    if first_purchase:
        book.set(first_purchase_at=now)
    return retier(book)


def reward_referral(
    session: Session, book: CardBook, actor: Actor, purchase_id: int, first_purchase: bool
) -> None:
    """8. Referral: the friend is credited here; the referrer in its own transaction
    through the outbox, so this one never locks two cards."""
    card = book.card
    points = rules.referral_due(book.rules, first_purchase, card.referrer_card_id, card.referral_rewarded)
    if points:
        book.set(referral_rewarded=True)
        book.credit(
            "referral",
            points,
            actor=actor,
            purchase_id=purchase_id,
            reason="referral: your first purchase",
        )
        enqueue(
            session,
            actor.merchant_id,
            "referral.reward",
            {"card_id": card.referrer_card_id, "friend_card_id": card.id, "points": points},
        )


def purchase_events(
    session: Session, actor: Actor, card: Card, response: dict[str, Any], tiers: tuple[str | None, str | None]
) -> None:
    emit_event(
        session,
        actor.merchant_id,
        "purchase.created",
        {k: response[k] for k in _PURCHASE_EVENT_FIELDS} | {"card": card.code},
    )
    tier_event(session, actor, card, tiers)


# --- refund -------------------------------------------------------------------------------


def lock_purchase(session: Session, actor: Actor, purchase_id: int) -> tuple[Card, Program, Purchase]:
    """Lock the purchase's card, then the purchase (the lock order everywhere)."""
    card_id = session.scalar(
        select(Purchase.card_id).where(Purchase.id == purchase_id, Purchase.merchant_id == actor.merchant_id)
    )
    if card_id is None:
        raise not_found("purchase")
    # Lock order everywhere: the card first, then its purchase.
    card, program = lock_card_by_id(session, card_id)
    p = session.execute(for_update(select(Purchase).where(Purchase.id == purchase_id))).scalar_one()
    actor.check_location(p.location_id)
    return card, program, p


def refund_amount(session: Session, p: Purchase, body: RefundIn) -> tuple[int, list[dict[str, int]]]:
    """What is refunded: the lines asked for (marked refunded), or an amount (by default
    all that is left). Returns (amount, refunded lines)."""
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
                raise Explained(
                    "validation_error",
                    "the purchase has no line {line}",
                    line=item.line,
                    extra={"field": "lines"},
                )
            if item.qty > line.qty - line.refunded_qty:
                raise Explained(
                    "refund_exceeds_purchase",
                    "line {line}: {left} left to refund, {qty} asked",
                    line=item.line,
                    left=line.qty - line.refunded_qty,
                    qty=item.qty,
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
    return amount, refund_lines


def price_refund(p: Purchase, amount: int) -> rules.RefundOutcome:
    """What refunding `amount` reverses, in proportion to what is left of the purchase."""
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
        **stamp_kinds.totals(p),
    )
    return rules.refund(totals, amount)


def write_refund(
    session: Session,
    actor: Actor,
    card: Card,
    p: Purchase,
    outcome: rules.RefundOutcome,
    refund_lines: list[dict[str, int]],
    reason: str | None,
    now: dt.datetime,
) -> int:
    """Insert the refund (what the card gives back is filled in by record_refund);
    returns its id."""
    refund_id: int = session.execute(
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
            reason=reason,
            actor_type=actor.kind,
            actor_id=actor.id,
            created_at=now,
        )
        .returning(Refund.__table__.c.id)
    ).scalar_one()
    return refund_id


def reverse_on_card(
    session: Session, book: CardBook, actor: Actor, p: Purchase, outcome: rules.RefundOutcome, refund_id: int
) -> tuple[int, int]:
    """Give back the points paid, take back the points accrued (into debt if the program
    allows), take the stamps off and the spend down. Returns (points taken back, stamps
    removed)."""
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
    book.set(spend=book.card.spend - outcome.spend_reversed)
    return reversed_points, stamps_removed


def record_refund(
    session: Session,
    p: Purchase,
    outcome: rules.RefundOutcome,
    refund_id: int,
    reversed_points: int,
    stamps_removed: int,
) -> None:
    """What was refunded, on the purchase and on the refund row."""
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


def refund_response(
    session: Session,
    book: CardBook,
    p: Purchase,
    outcome: rules.RefundOutcome,
    refund_id: int,
    refund_lines: list[dict[str, int]],
    reversed_points: int,
    stamps_removed: int,
) -> dict[str, Any]:
    return {
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
        "created_at": book.now.isoformat(),
        "card": card_view(session, book.card, book.program, book=book),
    }


def refund_events(
    session: Session,
    actor: Actor,
    card: Card,
    p: Purchase,
    outcome: rules.RefundOutcome,
    refund_id: int,
    reason: str | None,
    tiers: tuple[str | None, str | None],
) -> None:
    """The audit record, `purchase.refunded` and, if the tier moved, `card.tier_changed`."""
    audit(
        session,
        actor,
        "purchase.refund",
        "purchase",
        p.id,
        {"refund_id": refund_id, "amount": outcome.amount, "card": card.code, "reason": reason},
    )
    emit_event(
        session,
        actor.merchant_id,
        "purchase.refunded",
        {"purchase_id": p.id, "refund_id": refund_id, "amount": outcome.amount, "card": card.code},
    )
    tier_event(session, actor, card, tiers)
