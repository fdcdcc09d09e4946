"""The checkout order as a pure function, with property-based tests of its invariants."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from loyalwallet.checkout.rules import CardState, Line, Offer, PurchaseTotals, compute, refund
from loyalwallet.errors import DomainError
from loyalwallet.programs.rules import BonusRules, DiscountRules, StampRules, parse_rules

BONUS = parse_rules(
    "bonus",
    {
        "tiers": [
            {"name": "Bronze", "min_spend": 0, "cashback_pct": 5},
            {"name": "Silver", "min_spend": 100_000, "cashback_pct": 10},
        ],
        "max_redeem_pct": 50,
    },
)
DISCOUNT = parse_rules(
    "discount",
    {
        "tiers": [
            {"name": "Base", "min_spend": 0, "discount_pct": 5},
            {"name": "VIP", "min_spend": 100_000, "discount_pct": 10},
        ]
    },
)
STAMP = parse_rules("stamp", {"stamps_required": 6})


def state(available: int = 0, stamps: int = 0, spend: int = 0) -> CardState:
    return CardState(available=available, stamps=stamps, tier_spend=spend, balance=available)


def test_bonus_accrual_floors_on_money_paid() -> None:
    out = compute(BONUS, state(), 35_099)  # 350.99 RUB at 5 % = 17.5 points -> 17
    assert (out.to_pay, out.points_accrued, out.discount) == (35_099, 17, 0)
    assert out.tier_after == "Bronze"


def test_redemption_then_accrual_on_what_is_paid() -> None:
    out = compute(BONUS, state(available=500), 40_000, redeem_points=200)
    assert out.redeem_value == 20_000
    assert out.to_pay == 20_000
    assert out.points_accrued == 10  # 5 % of 200.00 RUB paid
    assert out.max_redeem_points == 200  # 50 % of 400 RUB


def test_redeem_above_balance_and_above_limit() -> None:
    with pytest.raises(DomainError) as err:
        compute(BONUS, state(available=100), 40_000, redeem_points=101)
    assert err.value.code == "insufficient_points"
    with pytest.raises(DomainError) as err:
        compute(BONUS, state(available=1000), 40_000, redeem_points=201)
    assert err.value.code == "redeem_limit_exceeded"
    assert err.value.extra["max_redeem_points"] == 200


def test_tier_changes_after_the_purchase_not_during() -> None:
    out = compute(BONUS, state(spend=90_000), 20_000)
    assert out.tier_before == "Bronze" and out.tier_after == "Silver"
    assert out.points_accrued == 10  # still Bronze's 5 % for this check


def test_discount_tier_then_coupon() -> None:
    out = compute(DISCOUNT, state(spend=150_000), 10_000, offer=Offer(kind="fixed_off", value=3_000))
    assert out.tier_discount == 1_000
    assert out.coupon_discount == 3_000
    assert out.to_pay == 6_000
    assert out.points_accrued == 0


def test_free_item_takes_the_cheapest_matching_line() -> None:
    lines = [
        Line(qty=1, price=25_000, sku="LATTE", category="coffee"),
        Line(qty=1, price=18_000, sku="ESP", category="coffee"),
        Line(qty=1, price=30_000, sku="CAKE", category="food"),
    ]
    out = compute(STAMP, state(stamps=2), 73_000, lines, offer=Offer(kind="free_item", category="coffee"))
    assert out.coupon_discount == 18_000
    assert out.to_pay == 55_000
    assert out.stamps_added == 1


def test_free_item_without_a_matching_line_is_refused() -> None:
    lines = [Line(qty=1, price=30_000, sku="CAKE", category="food")]
    with pytest.raises(DomainError) as err:
        compute(STAMP, state(), 30_000, lines, offer=Offer(kind="free_item", category="coffee"))
    assert err.value.code == "coupon_invalid"


def test_stamps_carry_over_into_rewards() -> None:
    # stamps_required 6: five paid stamps make a reward.
    out = compute(STAMP, state(stamps=4), 20_000)
    assert (out.stamps_added, out.stamps_after, out.rewards_earned) == (1, 0, 1)
    rules = parse_rules("stamp", {"stamps_required": 6, "qualifying": {"categories": ["coffee"]}})
    lines = [Line(qty=4, price=5_000, category="coffee"), Line(qty=2, price=10_000, category="food")]
    out = compute(rules, state(stamps=3), 40_000, lines)
    assert (out.stamps_added, out.stamps_after, out.rewards_earned) == (4, 2, 1)


def walk(rules: StampRules, visits: int, price: int = 20_000) -> list[tuple[int, bool, int]]:
    """A guest buying one item a visit, using a reward as soon as one is there: for each
    visit (stamps after it, whether the reward was used, money paid)."""
    stamps, rewards, out = 0, 0, []
    for _ in range(visits):
        offer = Offer(kind="free_item", value=rules.reward.value) if rewards else None
        result = compute(rules, state(stamps=stamps), price, offer=offer)
        rewards += result.rewards_earned - (1 if offer else 0)
        stamps = result.stamps_after
        out.append((stamps, offer is not None, result.to_pay))
    return out


@pytest.mark.parametrize("required", [2, 3, 6, 10])
def test_stamps_required_n_means_the_nth_visit_is_free(required: int) -> None:
    rules = parse_rules(
        "stamp", {"stamps_required": required, "reward": {"kind": "free_item", "value": 20_000}}
    )
    assert isinstance(rules, StampRules)
    assert (rules.stamps_to_collect, rules.free_visit) == (required - 1, required)
    visits = walk(rules, 3 * required)
    free = [i + 1 for i, (_, used, _) in enumerate(visits) if used]
    # The N-th, 2N-th, 3N-th visits are free; every other visit is paid and stamped.
    assert free == [required, 2 * required, 3 * required]
    assert all(paid == 0 for _, used, paid in visits if used)
    assert all(paid == 20_000 for _, used, paid in visits if not used)
    assert max(stamps for stamps, _, _ in visits) == required - 2  # the card never shows a full row


def test_six_means_five_paid_cups_and_the_sixth_free() -> None:
    visits = walk(parse_rules("stamp", {"stamps_required": 6, "reward": {"value": 20_000}}), 7)
    assert [stamps for stamps, _, _ in visits] == [1, 2, 3, 4, 0, 0, 1]
    assert [used for _, used, _ in visits] == [False] * 5 + [True, False]


def test_free_item_from_the_amount_alone() -> None:
    # No check lines: the reward's value comes off (never more than the check).
    out = compute(STAMP, state(), 25_000, offer=Offer(kind="free_item", value=20_000))
    assert (out.coupon_discount, out.to_pay, out.free_line) == (20_000, 5_000, None)
    out = compute(STAMP, state(), 15_000, offer=Offer(kind="free_item", value=20_000))
    assert (out.coupon_discount, out.to_pay, out.stamps_added) == (15_000, 0, 0)
    # With lines: the cheapest matching item, at most the value.
    lines = [Line(qty=1, price=25_000, category="coffee"), Line(qty=1, price=15_000, category="coffee")]
    out = compute(STAMP, state(), 40_000, lines, offer=Offer(kind="free_item", value=20_000))
    assert out.coupon_discount == 15_000 and out.free_line == 1
    # A reward that takes "the item's price" cannot guess it without lines: a clear refusal.
    with pytest.raises(DomainError) as err:
        compute(STAMP, state(), 25_000, offer=Offer(kind="free_item"))
    assert err.value.code == "coupon_invalid" and err.value.extra["reason"] == "item_price_needed"
    assert "add the free item as a line" in err.value.detail


def test_a_fully_free_purchase_earns_no_stamp() -> None:
    out = compute(
        STAMP, state(), 20_000, [Line(qty=1, price=20_000, category="c")], offer=Offer(kind="free_item")
    )
    assert out.to_pay == 0 and out.stamps_added == 0


def test_min_check_and_accrue_on_redeem() -> None:
    rules = parse_rules(
        "bonus",
        {
            "tiers": [{"name": "A", "min_spend": 0, "cashback_pct": 10}],
            "min_check": 10_000,
            "accrue_on_redeem": False,
        },
    )
    assert compute(rules, state(), 9_999).points_accrued == 0
    assert compute(rules, state(), 10_000).points_accrued == 10
    assert compute(rules, state(available=50), 20_000, redeem_points=10).points_accrued == 0


def test_after_discounts_base_ignores_points() -> None:
    rules = parse_rules(
        "bonus",
        {"tiers": [{"name": "A", "min_spend": 0, "cashback_pct": 10}], "accrual_base": "after_discounts"},
    )
    assert compute(rules, state(available=100), 20_000, redeem_points=100).points_accrued == 20


def test_points_on_a_stamp_program_are_refused() -> None:
    with pytest.raises(DomainError) as err:
        compute(STAMP, state(), 20_000, redeem_points=1)
    assert err.value.code == "validation_error"


# --- properties -------------------------------------------------------------------------

money = st.integers(min_value=1, max_value=10**9)


@st.composite
def bonus_rules(draw: st.DrawFn) -> BonusRules:
    pct = draw(st.decimals(min_value=0, max_value=100, places=2))
    redeem = draw(st.decimals(min_value=0, max_value=100, places=2))
    point_value = draw(st.sampled_from([1, 10, 100, 1000]))
    rules = parse_rules(
        "bonus",
        {
            "tiers": [{"name": "A", "min_spend": 0, "cashback_pct": str(pct)}],
            "max_redeem_pct": str(redeem),
            "point_value": point_value,
        },
    )
    assert isinstance(rules, BonusRules)
    return rules


@settings(max_examples=300, deadline=None)
@given(rules=bonus_rules(), amount=money, available=st.integers(0, 10**7), ask=st.integers(0, 10**7))
def test_redeem_never_exceeds_balance_or_limit(
    rules: BonusRules, amount: int, available: int, ask: int
) -> None:
    try:
        out = compute(rules, state(available=available), amount, redeem_points=ask)
    except DomainError as err:
        assert err.code in ("insufficient_points", "redeem_limit_exceeded")
        limit = amount * int(rules.max_redeem_pct * 100) // 10000 // rules.point_value
        assert ask > available or ask > limit
        return
    assert out.points_redeemed <= available
    assert out.redeem_value <= amount * int(rules.max_redeem_pct * 100) // 10000
    assert 0 <= out.to_pay <= amount
    assert out.to_pay + out.redeem_value + out.discount == amount
    assert out.points_accrued * rules.point_value <= out.accrual_base  # at most 100 % back


@settings(max_examples=300, deadline=None)
@given(
    amount=money,
    to_pay_share=st.integers(0, 100),
    accrued=st.integers(0, 10**7),
    redeemed=st.integers(0, 10**7),
    stamps=st.integers(0, 50),
    parts=st.lists(st.integers(1, 10**9), min_size=1, max_size=8),
)
def test_partial_refunds_never_exceed_the_purchase(
    amount: int, to_pay_share: int, accrued: int, redeemed: int, stamps: int, parts: list[int]
) -> None:
    to_pay = amount * to_pay_share // 100
    p = PurchaseTotals(
        amount=amount,
        to_pay=to_pay,
        points_accrued=accrued,
        points_redeemed=redeemed,
        stamps_added=stamps,
        spend_added=to_pay,
    )
    for part in parts:
        left = p.amount - p.refunded_amount
        if left == 0:
            with pytest.raises(DomainError):
                refund(p, max(1, part))
            break
        part = min(part, left)
        r = refund(p, part)
        assert min(r.money_returned, r.points_reversed, r.points_returned, r.stamps_reversed) >= 0
        p = PurchaseTotals(
            **{
                **p.__dict__,
                "refunded_amount": p.refunded_amount + r.amount,
                "refunded_money": p.refunded_money + r.money_returned,
                "points_reversed": p.points_reversed + r.points_reversed,
                "points_returned": p.points_returned + r.points_returned,
                "stamps_reversed": p.stamps_reversed + r.stamps_reversed,
                "spend_reversed": p.spend_reversed + r.spend_reversed,
            }
        )
        assert p.refunded_money <= to_pay
        assert p.points_reversed <= accrued
        assert p.points_returned <= redeemed
        assert p.stamps_reversed <= stamps
    if p.refunded_amount == amount:
        assert (p.refunded_money, p.points_reversed, p.points_returned, p.stamps_reversed) == (
            to_pay,
            accrued,
            redeemed,
            stamps,
        )


@given(amount=money, extra=st.integers(1, 10**6))
def test_refund_above_the_purchase_is_refused(amount: int, extra: int) -> None:
    p = PurchaseTotals(
        amount=amount, to_pay=amount, points_accrued=1, points_redeemed=0, stamps_added=0, spend_added=amount
    )
    with pytest.raises(DomainError) as err:
        refund(p, amount + extra)
    assert err.value.code == "refund_exceeds_purchase"


@given(rules=st.sampled_from([BONUS, DISCOUNT, STAMP]), amount=money, spend=st.integers(0, 10**7))
def test_amounts_add_up(rules: BonusRules | DiscountRules | StampRules, amount: int, spend: int) -> None:
    assume(amount > 0)
    out = compute(rules, state(spend=spend), amount)
    assert out.to_pay + out.discount + out.redeem_value == amount
    assert out.points_accrued >= 0 and out.stamps_added >= 0
