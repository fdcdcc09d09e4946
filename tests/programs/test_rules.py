"""Program rules: validation of their shape and the tier functions."""

from __future__ import annotations

from decimal import Decimal

import pytest

from loyalwallet.errors import DomainError
from loyalwallet.programs.rules import BonusRules, StampRules, bp, next_tier, parse_rules, tier_for

TIERS = [
    {"name": "Bronze", "min_spend": 0, "cashback_pct": 3},
    {"name": "Silver", "min_spend": 100_000, "cashback_pct": 5},
    {"name": "Gold", "min_spend": 500_000, "cashback_pct": 7.5},
]


def test_bonus_rules_defaults_and_percent_as_basis_points() -> None:
    rules = parse_rules("bonus", {"tiers": TIERS})
    assert isinstance(rules, BonusRules)
    assert rules.max_redeem_pct == Decimal(50)
    assert rules.point_value == 100
    assert [bp(t.cashback_pct) for t in rules.tiers] == [300, 500, 750]


@pytest.mark.parametrize(
    ("spend", "tier"),
    [
        (0, "Bronze"),
        (99_999, "Bronze"),
        (100_000, "Silver"),
        (499_999, "Silver"),
        (500_000, "Gold"),
        (10**9, "Gold"),
    ],
)
def test_tier_for_spend(spend: int, tier: str) -> None:
    rules = parse_rules("bonus", {"tiers": TIERS})
    assert isinstance(rules, BonusRules)
    assert tier_for(rules.tiers, spend).name == tier


def test_next_tier() -> None:
    rules = parse_rules("bonus", {"tiers": TIERS})
    assert isinstance(rules, BonusRules)
    assert next_tier(rules.tiers, 0).name == "Silver"  # type: ignore[union-attr]
    assert next_tier(rules.tiers, 500_000) is None


@pytest.mark.parametrize(
    ("kind", "rules", "fragment"),
    [
        ("bonus", {"tiers": []}, "tiers"),
        ("bonus", {"tiers": [{"name": "A", "min_spend": 100, "cashback_pct": 5}]}, "min_spend 0"),
        ("bonus", {"tiers": [{"name": "A", "min_spend": 0, "cashback_pct": 101}]}, "cashback_pct"),
        ("bonus", {"tiers": [{"name": "A", "min_spend": 0, "cashback_pct": 5.555}]}, "cashback_pct"),
        ("bonus", {"tiers": [{"name": "A", "min_spend": 0, "cashback_pct": 5}], "ttl_days": 0}, "ttl_days"),
        ("bonus", {"tiers": [{"name": "A", "min_spend": 0.5, "cashback_pct": 5}]}, "min_spend"),
        ("bonus", {"tiers": [{"name": "A", "min_spend": 0, "cashback_pct": 5}], "bogus": 1}, "bogus"),
        (
            "bonus",
            {
                "tiers": [
                    {"name": "A", "min_spend": 0, "cashback_pct": 5},
                    {"name": "A", "min_spend": 5, "cashback_pct": 6},
                ]
            },
            "unique",
        ),
        (
            "bonus",
            {
                "tiers": [
                    {"name": "A", "min_spend": 0, "cashback_pct": 5},
                    {"name": "B", "min_spend": 0, "cashback_pct": 6},
                ]
            },
            "increasing",
        ),
        ("stamp", {"stamps_required": 1}, "stamps_required"),
        ("stamp", {}, "stamps_required"),
        ("stamp", {"stamps_required": 6, "reward": {"kind": "percent_off"}}, "pct"),
        ("stamp", {"stamps_required": 6, "qualifying": {}}, "skus"),
        ("discount", {"tiers": [{"name": "A", "min_spend": 0, "cashback_pct": 5}]}, "discount_pct"),
        ("loyalty", {}, "kind"),
    ],
)
def test_invalid_rules_are_refused_with_the_field(kind: str, rules: dict, fragment: str) -> None:
    with pytest.raises(DomainError) as err:
        parse_rules(kind, rules)
    assert err.value.code == "validation_error"
    text = str(err.value.problem())
    assert fragment in text


def test_stamp_rules() -> None:
    rules = parse_rules("stamp", {"stamps_required": 6, "qualifying": {"categories": ["coffee"]}})
    assert isinstance(rules, StampRules)
    assert rules.qualifying is not None and rules.qualifying.matches(None, "coffee")
    assert not rules.qualifying.matches("TEA", "tea")
    assert rules.reward.kind == "free_item"
