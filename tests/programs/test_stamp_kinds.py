"""Several stamp kinds on one card (issue 18): the rules' shape and the pure rule that
counts each kind's stamps from the check lines, with property-based tests."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalwallet.checkout.rules import CardState, Line, PurchaseTotals, compute, refund
from loyalwallet.errors import DomainError
from loyalwallet.programs.rules import StampRules, parse_rules, rules_to_json

COFFEE_PASTRY: dict[str, Any] = {
    "stamps_required": 6,
    "kind_name": "Coffee",
    "qualifying": {"categories": ["coffee"]},
    "reward": {"kind": "free_item", "name": "Free coffee", "category": "coffee"},
    "kinds": [
        {
            "name": "Pastry",
            "stamps_required": 5,
            "qualifying": {"categories": ["pastry"], "skus": ["CROISSANT"]},
            "reward": {"kind": "free_item", "name": "Free pastry", "category": "pastry"},
        }
    ],
}


def rules(raw: dict[str, Any]) -> StampRules:
    parsed = parse_rules("stamp", raw)
    assert isinstance(parsed, StampRules)
    return parsed


def test_single_kind_rules_store_and_answer_what_they_did() -> None:
    single = rules({"stamps_required": 6})
    assert not single.multi_kind and len(single.stamp_kinds()) == 1
    assert "kinds" not in rules_to_json(single) and "kind_name" not in rules_to_json(single)
    assert rules_to_json(single)["stamps_required"] == 6


def test_kinds_are_listed_kind_1_first() -> None:
    r = rules(COFFEE_PASTRY)
    assert [k.name for k in r.stamp_kinds()] == ["Coffee", "Pastry"]
    assert [k.stamps_to_collect for k in r.stamp_kinds()] == [5, 4]
    assert rules_to_json(r)["kinds"][0]["name"] == "Pastry"
    with pytest.raises(DomainError) as err:
        r.kind(3)
    assert err.value.code == "validation_error"


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"kinds": [{"name": f"K{i}", "stamps_required": 3} for i in range(4)]}, ["rules", "kinds"]),
        ({"kinds": [{"name": "Coffee", "stamps_required": 3}]}, ["rules"]),
        ({"kinds": [{"name": "Tea", "stamps_required": 1}]}, ["rules", "kinds", 0, "stamps_required"]),
        ({"kinds": [{"name": "", "stamps_required": 3}]}, ["rules", "kinds", 0, "name"]),
        (
            {"kinds": [{"name": "Tea", "stamps_required": 3, "qualifying": {}}]},
            ["rules", "kinds", 0, "qualifying"],
        ),
    ],
)
def test_bad_kinds_are_explained_at_the_field(change: dict[str, Any], where: list[Any]) -> None:
    with pytest.raises(DomainError) as err:
        parse_rules("stamp", {**COFFEE_PASTRY, **change})
    assert err.value.code == "validation_error"
    assert err.value.extra["errors"][0]["loc"][: len(where)] == where


def test_each_kind_counts_its_own_lines() -> None:
    lines = [
        Line(qty=2, price=20_000, sku="LATTE", category="coffee"),
        Line(qty=1, price=15_000, sku="CROISSANT", category="bakery"),
        Line(qty=1, price=10_000, sku="MUFFIN", category="pastry"),
    ]
    out = compute(rules(COFFEE_PASTRY), CardState(0, 4, 0, kind_stamps={2: 3}), 65_000, lines)
    assert (out.stamps_added, out.stamps_after, out.rewards_earned) == (2, 1, 1)
    [pastry] = out.kind_stamps
    assert (pastry.kind, pastry.added, pastry.after, pastry.rewards) == (2, 2, 1, 1)


def test_a_check_without_lines_stamps_only_kinds_without_a_filter() -> None:
    raw = {**COFFEE_PASTRY, "qualifying": None}
    out = compute(rules(raw), CardState(0, 0, 0), 30_000)
    assert out.stamps_added == 1 and out.kind_stamps[0].added == 0


CATEGORIES = ["coffee", "pastry", "tea", "other"]
line_st = st.builds(
    Line,
    qty=st.integers(0, 5),
    price=st.integers(1, 50_000),
    sku=st.sampled_from([None, "LATTE", "CROISSANT", "X"]),
    category=st.sampled_from([None, *CATEGORIES]),
)
kind_st = st.fixed_dictionaries(
    {
        "stamps_required": st.integers(2, 12),
        "stamps_per_item": st.integers(1, 3),
        "qualifying": st.sampled_from(
            [
                None,
                {"categories": ["coffee"]},
                {"categories": ["pastry"], "skus": ["CROISSANT"]},
                {"skus": ["X"]},
            ]
        ),
        "max_stamps_per_purchase": st.sampled_from([None, 1, 4]),
    }
)


@settings(max_examples=300, deadline=None)
@given(
    first=kind_st,
    extra=st.lists(kind_st, min_size=0, max_size=3),
    lines=st.lists(line_st, max_size=6),
    held=st.lists(st.integers(0, 20), min_size=4, max_size=4),
)
def test_stamps_per_kind(
    first: dict[str, Any], extra: list[dict[str, Any]], lines: list[Line], held: list[int]
) -> None:
    """Each kind earns exactly its matching quantity (times stamps per item, capped), a
    kind with no filter one set per purchase; what a card then holds of a kind is below
    what fills it, and stamps held + added == rewards * cells + after. Kinds never change
    kind 1's figures: a multi-kind card's kind 1 is what the single-kind card does."""
    named = [{**k, "name": f"Kind {i}"} for i, k in enumerate(extra, start=2)]
    r = rules({**first, "kinds": named})
    amount = sum(line.total for line in lines) or 1_000
    state = CardState(0, held[0], 0, kind_stamps={n: held[n - 1] for n in range(2, 2 + len(extra))})
    out = compute(r, state, amount, lines)
    single = compute(rules(first), CardState(0, held[0], 0), amount, lines)
    assert (out.stamps_added, out.stamps_after, out.rewards_earned) == (
        single.stamps_added,
        single.stamps_after,
        single.rewards_earned,
    )
    assert [k.kind for k in out.kind_stamps] == list(range(2, 2 + len(extra)))
    for k, spec in zip(out.kind_stamps, r.kinds, strict=True):
        if spec.qualifying is None:
            expected = spec.stamps_per_purchase
        else:
            expected = spec.stamps_per_item * sum(
                line.qty for line in lines if spec.qualifying.matches(line.sku, line.category)
            )
        if spec.max_stamps_per_purchase is not None:
            expected = min(expected, spec.max_stamps_per_purchase)
        assert k.added == expected
        assert 0 <= k.after < spec.stamps_to_collect
        assert held[k.kind - 1] + k.added == k.rewards * spec.stamps_to_collect + k.after


@settings(max_examples=300, deadline=None)
@given(
    added=st.dictionaries(st.integers(2, 4), st.integers(0, 40), max_size=3),
    amount=st.integers(1, 100_000),
    cuts=st.lists(st.integers(1, 100_000), max_size=6),
)
def test_refunds_take_back_each_kind_in_proportion(
    added: dict[int, int], amount: int, cuts: list[int]
) -> None:
    """Partial refunds never take back more of a kind than the purchase added, and the
    whole check back takes back exactly all of every kind."""
    reversed_: dict[int, int] = dict.fromkeys(added, 0)
    refunded = 0
    for cut in [*cuts, amount]:
        left = amount - refunded
        if left == 0:
            break
        part = min(cut, left)
        totals = PurchaseTotals(
            amount=amount,
            to_pay=amount,
            points_accrued=0,
            points_redeemed=0,
            stamps_added=0,
            spend_added=amount,
            refunded_amount=refunded,
            kind_added=added,
            kind_reversed=dict(reversed_),
        )
        out = refund(totals, part)
        for kind, n in out.kind_stamps_reversed.items():
            assert n >= 0
            reversed_[kind] += n
            assert reversed_[kind] <= added[kind]
        refunded += part
    assert reversed_ == added
