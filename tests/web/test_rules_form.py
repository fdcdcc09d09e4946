"""The program rules form <-> rules conversion (programs/forms.py), without a server."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from loyalwallet.programs.form_values import (
    FieldError,
    format_money,
    format_percent,
    parse_int,
    parse_money,
    parse_percent,
)
from loyalwallet.programs.forms import RulesForm, form_to_rules, rules_to_form
from loyalwallet.programs.pages import STARTER_RULES
from loyalwallet.programs.rules import BonusRules, DiscountRules, StampRules, rules_to_json
from loyalwallet.text import gettext_for

BONUS: dict[str, Any] = {
    "tiers": [
        {"name": "Bronze", "min_spend": 0, "cashback_pct": 5},
        {"name": "Silver", "min_spend": 1_000_050, "cashback_pct": "7.5"},
    ],
    "tier_period_days": 365,
    "welcome_points": 100,
    "birthday_points": 200,
    "referral_points": 50,
    "max_redeem_pct": 30,
    "ttl_days": 180,
    "accrual_base": "after_discounts",
    "pending_hours": 24,
    "min_check": 15_000,
    "point_value": 50,
    "accrue_on_redeem": False,
    "refund_debt": "clamp",
}
STAMP: dict[str, Any] = {
    "stamps_required": 8,
    "qualifying": {"skus": ["LATTE", "CAPPU"], "categories": ["coffee"]},
    "stamps_per_item": 2,
    "max_stamps_per_purchase": 4,
    "min_amount": 10_000,
    "welcome_stamps": 1,
    "reward": {"kind": "percent_off", "name": "Half off", "pct": "50", "valid_days": 30},
}
DISCOUNT: dict[str, Any] = {
    "tiers": [
        {"name": "Guest", "min_spend": 0, "discount_pct": 3},
        {"name": "Friend", "min_spend": 2_000_000, "discount_pct": "12.25"},
    ]
}


def posted(form: RulesForm) -> dict[str, str]:
    """What a browser posts for a form as shown (checkbox off = absent)."""
    data = {k: v for k, v in form.values.items() if v or k != "accrue_on_redeem"}
    for i, row in enumerate(form.tiers):
        data.update({f"tier-{i}-{col}": value for col, value in row.items()})
    return data


@pytest.mark.parametrize(
    ("text", "minor"),
    [
        ("10 000,50", 1_000_050),
        ("10000,50", 1_000_050),
        ("10000.5", 1_000_050),
        ("10\u00a0000", 1_000_000),
        ("10\u202f000,05", 1_000_005),
        (" 0 ", 0),
        ("350 ₽", 35_000),
        ("1", 100),
    ],
)
def test_money_in_major_units_to_minor_exactly(text: str, minor: int) -> None:
    assert parse_money(text) == minor


@pytest.mark.parametrize("text", ["10,000.50", "1,234", "abc", "-5", "10.", "1e3", "5,5,5"])
def test_money_that_is_not_an_amount(text: str) -> None:
    with pytest.raises(FieldError):
        parse_money(text)


def test_percent_and_int_parsing() -> None:
    assert parse_percent("7,5") == Decimal("7.5")
    assert parse_percent("7.25 %") == Decimal("7.25")
    assert parse_percent("") is None
    assert parse_int(" 1 000 ") == 1000
    assert parse_int("") is None
    for bad in ("seven", "7,5,1", "-1"):
        with pytest.raises(FieldError):
            parse_percent(bad)
    with pytest.raises(FieldError):
        parse_int("2.5")


def test_display_formats() -> None:
    assert format_money(1_000_050) == "10 000,50"
    assert format_money(1_000_000, ".") == "10 000"
    assert format_percent(Decimal("7.50")) == "7,5"
    assert format_percent(Decimal("10"), ".") == "10"
    assert format_percent("12.25", ".") == "12.25"


@pytest.mark.parametrize(
    ("kind", "rules", "model"),
    [
        ("bonus", BONUS, BonusRules),
        ("stamp", STAMP, StampRules),
        ("discount", DISCOUNT, DiscountRules),
        *[(k, STARTER_RULES[k], None) for k in ("bonus", "stamp", "discount")],
    ],
)
@pytest.mark.parametrize("sep", [",", "."])
def test_round_trip_keeps_every_rule(kind: str, rules: dict[str, Any], model: Any, sep: str) -> None:
    form = rules_to_form(kind, rules, sep)
    back, parsed = form_to_rules(kind, posted(form), sep=sep)
    assert back.errors == {} and parsed is not None
    expected = rules_to_json(type(parsed).model_validate(rules))
    assert rules_to_json(parsed) == expected
    if model is not None:
        assert isinstance(parsed, model)


def test_bonus_form_shows_major_units_and_percents() -> None:
    form = rules_to_form("bonus", BONUS)
    assert form.tiers[1] == {"name": "Silver", "min_spend": "10 000,50", "pct": "7,5"}
    assert form.values["min_check"] == "150" and form.values["point_value"] == "0,50"
    assert form.values["tier_period"] == "rolling" and form.values["tier_period_days"] == "365"
    assert form.values["accrue_on_redeem"] == "" and form.values["refund_debt"] == "clamp"


def test_tiers_edited_added_sorted_and_removed() -> None:
    data = posted(rules_to_form("bonus", BONUS))
    data["tier-1-pct"] = "8,75"
    data.update({"tier-7-name": "Gold", "tier-7-min_spend": "5 000", "tier-7-pct": "6"})
    data.update({"tier-8-name": "", "tier-8-min_spend": "", "tier-8-pct": ""})  # the empty row
    form, rules = form_to_rules("bonus", data)
    assert isinstance(rules, BonusRules)
    assert [(t.name, t.min_spend, t.cashback_pct) for t in rules.tiers] == [
        ("Bronze", 0, Decimal(5)),
        ("Gold", 500_000, Decimal(6)),
        ("Silver", 1_000_050, Decimal("8.75")),
    ]
    assert [row["name"] for row in form.tiers] == ["Bronze", "Gold", "Silver"]
    data["tier-7-remove"] = "1"
    _form, rules = form_to_rules("bonus", data)
    assert isinstance(rules, BonusRules) and [t.name for t in rules.tiers] == ["Bronze", "Silver"]


def test_blank_optional_fields_mean_none_and_lifetime_period() -> None:
    data = posted(rules_to_form("bonus", BONUS))
    data.update({"ttl_days": "", "tier_period": "lifetime", "tier_period_days": "90"})
    _form, rules = form_to_rules("bonus", data)
    assert isinstance(rules, BonusRules) and rules.ttl_days is None and rules.tier_period_days is None


def test_stamps_per_purchase_drops_the_qualifying_items() -> None:
    data = posted(rules_to_form("stamp", STAMP))
    assert data["stamp_mode"] == "item" and data["qualifying-skus"] == "LATTE, CAPPU"
    data["stamp_mode"] = "purchase"
    _form, rules = form_to_rules("stamp", data)
    assert isinstance(rules, StampRules) and rules.qualifying is None


def test_bad_input_gives_field_errors_in_russian() -> None:
    data = posted(rules_to_form("bonus", BONUS))
    data.update(
        {
            "tier-1-min_spend": "десять тысяч",
            "tier-1-pct": "7,555",
            "max_redeem_pct": "150",
            "welcome_points": "12.5",
            "tier_period_days": "",
            "min_check": "100 000 000 000",
        }
    )
    form, rules = form_to_rules("bonus", data, gettext_for("ru"))
    assert rules is None
    assert form.errors == {
        "tier-1-min_spend": "Введите сумму, например 1500 или 1500,50",
        "tier-1-pct": "Не больше двух знаков после запятой",
        "max_redeem_pct": "Не больше 100",
        "welcome_points": "Введите целое число",
        "tier_period_days": "Укажите число дней",
        "min_check": "Не больше 10 000 000 000",
    }
    assert form.tiers[1]["min_spend"] == "десять тысяч"  # shown back as typed
    assert form.first_error == "tier-1-min_spend"


def test_cross_field_errors_land_next_to_their_inputs() -> None:
    data = posted(rules_to_form("bonus", BONUS))
    data["tier-0-min_spend"] = "100"
    data["tier-1-name"] = "Bronze"
    form, rules = form_to_rules("bonus", data)
    assert rules is None and form.errors == {"tiers": "Each tier needs its own name."}
    data["tier-1-name"] = ""
    form, _rules = form_to_rules("bonus", data)
    assert form.errors == {"tier-1-name": "Required"}
    data = posted(rules_to_form("bonus", BONUS))
    data["tier-0-min_spend"] = "100"
    form, _rules = form_to_rules("bonus", data)
    assert form.errors == {"tiers": "The first tier starts at 0, so that every guest has a tier."}

    stamp = posted(rules_to_form("stamp", STAMP))
    stamp.update(
        {"qualifying-skus": "", "qualifying-categories": "", "reward-pct": "", "stamps_required": ""}
    )
    form, rules = form_to_rules("stamp", stamp, gettext_for("ru"))
    assert rules is None
    assert form.errors == {
        "stamps_required": "Обязательное поле",
        "qualifying-skus": "Укажите хотя бы один артикул или категорию либо ставьте штампы за покупку.",
        "reward-pct": "Укажите процент скидки.",
    }


def test_every_tier_removed_is_an_error() -> None:
    data = posted(rules_to_form("discount", DISCOUNT))
    data.update({"tier-0-remove": "1", "tier-1-remove": "1"})
    form, rules = form_to_rules("discount", data)
    assert rules is None and form.errors == {"tiers": "Add at least one tier"}
