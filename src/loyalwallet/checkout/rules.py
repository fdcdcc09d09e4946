"""The checkout as a pure function: what a purchase does to a check and a card.

Order (DESIGN.md §3), the same for quote and purchase:
1. tier discount → 2. coupon/reward → 3. points redemption (≤ balance, ≤ max_redeem_pct
of what is left) → 4. money paid → 5. accrual on the base → 6. stamps → 7. tier.
(8., the referral reward, needs other cards and lives in the service.)

All amounts are integers in minor units; percentages are basis points; every division
floors, so the guest is never given a fraction the merchant did not promise.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from loyalwallet.errors import DomainError, Explained
from loyalwallet.programs.rules import (
    BonusRules,
    DiscountRules,
    DiscountTier,
    Rules,
    StampKind,
    StampRules,
    bp,
    tier_for,
)


@dataclass(frozen=True)
class Line:
    qty: int
    price: int  # per unit
    sku: str | None = None
    name: str | None = None
    category: str | None = None

    @property
    def total(self) -> int:
        return self.qty * self.price


@dataclass(frozen=True)
class Offer:
    """A coupon or reward applied at step 2 (see cards.models.Coupon for the kinds)."""

    kind: str
    value: int = 0
    sku: str | None = None
    category: str | None = None
    min_amount: int = 0

    def matches(self, line: Line) -> bool:
        if self.sku is None and self.category is None:
            return True
        return (self.sku is not None and line.sku == self.sku) or (
            self.category is not None and line.category == self.category
        )


@dataclass(frozen=True)
class CardState:
    available: int  # points spendable now
    stamps: int
    tier_spend: int  # spend that decides the tier before this purchase
    balance: int = 0
    # Stamps of kinds 2..4 (a card with several stamp kinds), by kind number.
    kind_stamps: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class KindStamps:
    """What a purchase does to one stamp kind of a card."""

    kind: int
    added: int
    after: int
    rewards: int


@dataclass(frozen=True)
class Outcome:
    amount: int
    tier_discount: int
    coupon_discount: int
    points_redeemed: int
    redeem_value: int
    to_pay: int
    accrual_base: int
    points_accrued: int  # cashback plus a bonus-points coupon
    stamps_added: int
    stamps_after: int
    rewards_earned: int
    spend_added: int
    tier_before: str | None
    tier_after: str | None
    max_redeem_points: int
    discount_bp: int = 0
    cashback_bp: int = 0
    free_line: int | None = None
    notes: list[str] = field(default_factory=list)
    # Kinds 2..4 of a card with several stamp kinds (kind 1 is stamps_added/_after).
    kind_stamps: tuple[KindStamps, ...] = ()

    @property
    def discount(self) -> int:
        return self.tier_discount + self.coupon_discount

    def purchase_figures(self) -> dict[str, int | str | None]:
        """The figures a purchase row stores, the same from the general and the fast path."""
        return {
            "amount": self.amount,
            "tier_discount": self.tier_discount,
            "coupon_discount": self.coupon_discount,
            "discount": self.discount,
            "points_redeemed": self.points_redeemed,
            "redeem_value": self.redeem_value,
            "to_pay": self.to_pay,
            "accrual_base": self.accrual_base,
            "points_accrued": self.points_accrued,
            "stamps_added": self.stamps_added,
            "spend_added": self.spend_added,
            "tier_before": self.tier_before,
            "tier_after": self.tier_after,
        }


def coupon_code(raw: str) -> str:
    """The stored form of a typed coupon code: printed codes are grouped ("ABCDE-FGHJK");
    the stored form has no spaces or dashes."""
    return re.sub(r"[\s-]+", "", raw).upper()


def coupon_error(
    *,
    status: str,
    uses_left: int,
    card_id: int | None,
    program_id: int | None,
    valid_from: dt.datetime | None,
    valid_until: dt.datetime | None,
    for_card: int,
    for_program: int,
    now: dt.datetime,
) -> DomainError | None:
    """Why this coupon cannot pay for a purchase of this card now, or None."""
    if status != "available" or uses_left <= 0:
        return DomainError("coupon_invalid", "this coupon was already used")
    if card_id is not None and card_id != for_card:
        return DomainError("coupon_invalid", "this coupon belongs to another card")
    if program_id is not None and program_id != for_program:
        return DomainError("coupon_invalid", "this coupon is for another program")
    if valid_from is not None and valid_from > now:
        return DomainError("coupon_invalid", "this coupon is not valid yet")
    if valid_until is not None and valid_until <= now:
        return DomainError("coupon_invalid", "this coupon has expired")
    return None


def referral_due(
    rules: Rules, first_purchase: bool, referrer_card_id: int | None, referral_rewarded: bool
) -> int:
    """8. The points the friend gets on this purchase for having been referred (0: none)."""
    if (
        first_purchase
        and referrer_card_id is not None
        and not referral_rewarded
        and isinstance(rules, BonusRules)
    ):
        return rules.referral_points
    return 0


def max_redeem_points(rules: BonusRules, available: int, left: int) -> int:
    """The most points this check can take: the balance and the % limit both bind."""
    by_limit = left * bp(rules.max_redeem_pct) // 10000 // rules.point_value
    return max(0, min(available, by_limit))


def _coupon_discount(offer: Offer, left: int, lines: list[Line]) -> tuple[int, int | None]:
    if left < offer.min_amount:
        raise DomainError("coupon_invalid", "the check is below the coupon's minimum amount")
    if offer.kind == "percent_off":
        return left * offer.value // 10000, None
    if offer.kind == "fixed_off":
        return min(offer.value, left), None
    if offer.kind == "free_item":
        # With check lines: the cheapest matching item (at most `value` when set). From the
        # amount alone: the reward's value, never more than the check.
        matching = [(i, line) for i, line in enumerate(lines) if offer.matches(line) and line.qty > 0]
        if matching:
            index, line = min(matching, key=lambda pair: pair[1].price)
            off = line.price if offer.value == 0 else min(line.price, offer.value)
            return min(off, left), index
        if not lines:
            if offer.value > 0:
                return min(offer.value, left), None
            raise DomainError(
                "coupon_invalid",
                "this free-item reward has no value: add the free item as a line of the check, "
                "or set the reward's value in the programme",
                reason="item_price_needed",
            )
        raise DomainError("coupon_invalid", "the check has no item this reward is for", reason="no_item")
    if offer.kind == "bonus_points":
        return 0, None
    raise Explained("coupon_invalid", "unknown coupon kind {kind!r}", kind=offer.kind)


def _stamps_for(
    rules: StampRules | StampKind,
    lines: list[Line],
    to_pay: int,
    free_line: int | None,
    by_hand: int | None = None,
) -> int:
    if to_pay <= 0 or to_pay < rules.min_amount:
        return 0
    if by_hand is not None:
        # The cashier counted this kind by hand (no check lines): within the kind's limit.
        stamps = by_hand
    elif rules.qualifying is None:
        stamps = rules.stamps_per_purchase
    else:
        qty = 0
        for i, line in enumerate(lines):
            if rules.qualifying.matches(line.sku, line.category):
                qty += line.qty - (1 if i == free_line else 0)
        stamps = qty * rules.stamps_per_item
    if rules.max_stamps_per_purchase is not None:
        stamps = min(stamps, rules.max_stamps_per_purchase)
    return stamps


def compute(
    rules: Rules,
    state: CardState,
    amount: int,
    lines: list[Line] | None = None,
    redeem_points: int = 0,
    offer: Offer | None = None,
    by_hand: dict[int, int] | None = None,
) -> Outcome:
    """Apply the checkout order to a check. Raises DomainError when the check cannot be
    done as asked (not enough points, over the limit, a coupon that does not fit)."""
    lines = lines or []
    if amount <= 0:
        raise DomainError("validation_error", "amount must be a positive integer of minor units")
    if redeem_points < 0:
        raise DomainError("validation_error", "redeem_points must not be negative")
    by_hand = by_hand or {}
    if by_hand:
        if not isinstance(rules, StampRules):
            raise DomainError("validation_error", "this program has no stamps", field="stamps_by_kind")
        for number in by_hand:
            rules.kind(number)  # validation_error for a kind the programme does not have

    # 1. Tier discount.
    tier_before: str | None = None
    discount_bp = 0
    cashback_bp = 0
    if isinstance(rules, (BonusRules, DiscountRules)):
        tier = tier_for(rules.tiers, state.tier_spend)
        tier_before = tier.name
        if isinstance(tier, DiscountTier):
            discount_bp = bp(tier.discount_pct)
        else:
            cashback_bp = bp(tier.cashback_pct)
    tier_discount = amount * discount_bp // 10000
    left = amount - tier_discount

    # 2. Coupon or reward.
    coupon_discount, free_line = (0, None)
    if offer is not None:
        coupon_discount, free_line = _coupon_discount(offer, left, lines)
    left -= coupon_discount
    after_discounts = left

    # 3. Points.
    redeem_limit = 0
    redeem_value = 0
    if isinstance(rules, BonusRules):
        redeem_limit = max_redeem_points(rules, state.available, left)
        if redeem_points > max(state.available, 0):
            raise Explained(
                "insufficient_points",
                "the card has {available} points available, {redeem_points} asked",
                available=max(state.available, 0),
                redeem_points=redeem_points,
                extra={"available": max(state.available, 0)},
            )
        if redeem_points > redeem_limit:
            raise Explained(
                "redeem_limit_exceeded",
                "at most {redeem_limit} points can pay for this check ({max_redeem_pct}% of {left})",
                redeem_limit=redeem_limit,
                max_redeem_pct=rules.max_redeem_pct,
                left=left,
                extra={"max_redeem_points": redeem_limit},
            )
        redeem_value = redeem_points * rules.point_value
    elif redeem_points:
        raise DomainError("validation_error", "this program has no points to redeem")

    # 4. Money paid.
    to_pay = left - redeem_value

    # 5. Accrual.
    points_accrued = 0
    accrual_base = 0
    if isinstance(rules, BonusRules):
        accrual_base = to_pay if rules.accrual_base == "paid" else after_discounts
        if amount < rules.min_check or (redeem_points and not rules.accrue_on_redeem):
            accrual_base = 0
        points_accrued = accrual_base * cashback_bp // (10000 * rules.point_value)
    if offer is not None and offer.kind == "bonus_points":
        points_accrued += offer.value

    # 6. Stamps.
    stamps_added = stamps_after = rewards_earned = 0
    kind_stamps: tuple[KindStamps, ...] = ()
    if isinstance(rules, StampRules):
        stamps_added = _stamps_for(rules, lines, to_pay, free_line, by_hand.get(1))
        total = state.stamps + stamps_added
        rewards_earned, stamps_after = divmod(total, rules.stamps_to_collect)
        kind_stamps = stamps_by_kind(rules, state.kind_stamps, lines, to_pay, free_line, by_hand)
    else:
        stamps_after = state.stamps

    # 7. Tier after this purchase; spend is the money the guest paid.
    spend_added = to_pay
    tier_after = tier_before
    if isinstance(rules, (BonusRules, DiscountRules)):
        tier_after = tier_for(rules.tiers, state.tier_spend + spend_added).name

    return Outcome(
        amount=amount,
        tier_discount=tier_discount,
        coupon_discount=coupon_discount,
        points_redeemed=redeem_points,
        redeem_value=redeem_value,
        to_pay=to_pay,
        accrual_base=accrual_base,
        points_accrued=points_accrued,
        stamps_added=stamps_added,
        stamps_after=stamps_after,
        rewards_earned=rewards_earned,
        spend_added=spend_added,
        tier_before=tier_before,
        tier_after=tier_after,
        max_redeem_points=redeem_limit,
        discount_bp=discount_bp,
        cashback_bp=cashback_bp,
        free_line=free_line,
        kind_stamps=kind_stamps,
    )


def stamps_by_kind(
    rules: StampRules,
    held: dict[int, int],
    lines: list[Line],
    to_pay: int,
    free_line: int | None,
    by_hand: dict[int, int] | None = None,
) -> tuple[KindStamps, ...]:
    """Kinds 2..4: the stamps each earns from the check's lines (its own qualifying items,
    count and limits) or as the cashier counted them by hand, what the card then holds of
    it and the rewards it fills."""
    by_hand = by_hand or {}
    out = []
    for number, kind in enumerate(rules.kinds, start=2):
        added = _stamps_for(kind, lines, to_pay, free_line, by_hand.get(number))
        rewards, after = divmod(held.get(number, 0) + added, kind.stamps_to_collect)
        out.append(KindStamps(number, added, after, rewards))
    return tuple(out)


@dataclass(frozen=True)
class PurchaseTotals:
    """What a purchase did, and what earlier refunds of it already took back."""

    amount: int
    to_pay: int
    points_accrued: int
    points_redeemed: int
    stamps_added: int
    spend_added: int
    refunded_amount: int = 0
    refunded_money: int = 0
    points_reversed: int = 0
    points_returned: int = 0
    stamps_reversed: int = 0
    spend_reversed: int = 0
    # Kinds 2..4: stamps the purchase added and earlier refunds took back, by kind.
    kind_added: dict[int, int] = field(default_factory=dict)
    kind_reversed: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class RefundOutcome:
    amount: int
    money_returned: int
    points_reversed: int  # accrued points taken back
    points_returned: int  # redeemed points given back
    stamps_reversed: int
    spend_reversed: int
    kind_stamps_reversed: dict[int, int] = field(default_factory=dict)


def refund(p: PurchaseTotals, amount: int) -> RefundOutcome:
    """A refund of `amount` (of the check's value) reverses every figure in proportion.

    Each figure is computed from the cumulative refunded share, floor(total * refunded /
    amount), minus what earlier refunds took: no rounding drift across partial refunds,
    never more than the purchase, and exactly everything once the whole check is back.
    """
    if amount <= 0:
        raise DomainError("validation_error", "refund amount must be a positive integer")
    left = p.amount - p.refunded_amount
    if amount > left:
        raise Explained(
            "refund_exceeds_purchase",
            "{left} of the purchase is left to refund, {amount} asked",
            left=left,
            amount=amount,
            extra={"refundable": left},
        )
    cumulative = p.refunded_amount + amount

    def share(total: int, done: int) -> int:
        return total * cumulative // p.amount - done

    return RefundOutcome(
        amount=amount,
        money_returned=share(p.to_pay, p.refunded_money),
        points_reversed=share(p.points_accrued, p.points_reversed),
        points_returned=share(p.points_redeemed, p.points_returned),
        stamps_reversed=share(p.stamps_added, p.stamps_reversed),
        spend_reversed=share(p.spend_added, p.spend_reversed),
        kind_stamps_reversed={
            k: share(added, p.kind_reversed.get(k, 0)) for k, added in sorted(p.kind_added.items())
        },
    )
