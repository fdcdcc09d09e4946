"""The pure builders of loyaltyClass and loyaltyObject JSON."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from loyalwallet.programs.design import parse_design
from loyalwallet.programs.rules import parse_rules
from loyalwallet.wallet.google import objects

ISSUER = "3388000000012345678"


def _program(kind: str, rules: dict[str, Any], design: dict[str, Any] | None = None) -> objects.ProgramFacts:
    return objects.ProgramFacts(
        id=7,
        merchant_id=3,
        kind=kind,
        name="Зерно",
        issuer_name="Кофейня",
        currency="RUB",
        rules=parse_rules(kind, rules),
        design=parse_design(design),
        language="ru",
    )


def _card(**kw: Any) -> objects.CardFacts:
    base = {
        "code": "1234567890",
        "serial": "abc_DEF-1",
        "holder": "Анна",
        "status": "active",
        "balance": 240,
        "stamps": 4,
        "tier": None,
        "spend": 0,
        "rewards": (),
        "web_url": "https://cafe.example/c/tok",
    }
    return objects.CardFacts(**{**base, **kw})


def _object(program: objects.ProgramFacts, card: objects.CardFacts) -> dict[str, Any]:
    cid = objects.class_id(ISSUER, "lw", 3, 7, objects.variant_for(program.design, card.tier))
    oid = objects.object_id(ISSUER, "lw", card.serial)
    return objects.loyalty_object(oid, cid, program, card, lambda sha: f"https://img/{sha}", lambda s: s)


def test_stamp_card_shows_stamps_as_n_of_m_and_rewards() -> None:
    program = _program("stamp", {"stamps_required": 6})
    obj = _object(program, _card(rewards=("Free coffee",)))
    assert obj["loyaltyPoints"] == {
        "label": "Stamps",
        "balance": {"string": "4/5"},
    }  # 6: five paid, the sixth free
    assert obj["secondaryLoyaltyPoints"] == {"label": "Rewards", "balance": {"int": 1}}
    assert {"id": "rewards", "header": "Rewards", "body": "Free coffee"} in obj["textModulesData"]
    terms = {
        "id": "stamp_terms",
        "header": "How it works",
        "body": "Paid visits: 5, then on visit 6: Free item",
    }
    assert terms in obj["textModulesData"]
    assert obj["id"] == f"{ISSUER}.lw-cabc_DEF-1" and obj["classId"] == f"{ISSUER}.lw-m3-p7"


def test_bonus_card_shows_points_tier_and_the_next_tier() -> None:
    rules = {
        "tiers": [
            {"name": "Bronze", "min_spend": 0, "cashback_pct": 5},
            {"name": "Gold", "min_spend": 1_000_000, "cashback_pct": 10},
        ]
    }
    obj = _object(_program("bonus", rules), _card(tier="Bronze", spend=250_050))
    assert obj["loyaltyPoints"] == {"label": "Points", "balance": {"int": 240}}
    assert obj["secondaryLoyaltyPoints"] == {"label": "Tier", "balance": {"string": "Bronze"}}
    assert {"id": "next_tier", "header": "Next tier", "body": "Gold: 7\u00a0499.50\u00a0₽"} in obj[
        "textModulesData"
    ]


def test_single_tier_bonus_card_shows_the_cashback() -> None:
    rules = {"tiers": [{"name": "Base", "min_spend": 0, "cashback_pct": Decimal("2.5")}]}
    obj = _object(_program("bonus", rules), _card(tier="Base"))
    assert obj["secondaryLoyaltyPoints"] == {"label": "Cashback", "balance": {"string": "2.5%"}}


def test_discount_card_shows_the_discount_and_tier() -> None:
    rules = {
        "tiers": [
            {"name": "Base", "min_spend": 0, "discount_pct": 5},
            {"name": "VIP", "min_spend": 500_000, "discount_pct": 10},
        ]
    }
    obj = _object(_program("discount", rules), _card(tier="VIP", spend=600_000))
    assert obj["loyaltyPoints"] == {"label": "Discount", "balance": {"string": "10%"}}
    assert obj["secondaryLoyaltyPoints"]["balance"] == {"string": "VIP"}
    assert "textModulesData" not in obj  # top tier: nothing next


def test_anonymous_and_blocked_cards() -> None:
    obj = _object(_program("stamp", {"stamps_required": 6}), _card(holder=None, status="blocked"))
    assert "accountName" not in obj and obj["state"] == "INACTIVE"
    patch = objects.patch_body(obj, objects.OBJECT_OPTIONAL)
    assert patch["accountName"] is None and patch["heroImage"] is None and patch["state"] == "INACTIVE"


def test_class_carries_the_back_fields_and_the_tier_look() -> None:
    design = {
        "colours": {"background": "#3B2A20"},
        "images": {"strip": "a" * 64},
        "terms": "1 point = 1 ₽",
        "address": "Покровка, 17",
        "phone": "+7 (495) 123-45-67",
        "links": [{"label": "Menu", "url": "https://cafe.example/menu"}],
        "locations": [{"latitude": 55.75, "longitude": 37.64}],
        "barcode": "pdf417",
        "tiers": {"Gold": {"colours": {"background": "#d4af37"}, "strip": "b" * 64}},
    }
    rules = {
        "tiers": [
            {"name": "Bronze", "min_spend": 0, "cashback_pct": 5},
            {"name": "Gold", "min_spend": 1000, "cashback_pct": 10},
        ]
    }
    program = _program("bonus", rules, design)
    variants = objects.variants(program.design, program.rules)
    assert variants["base"] is None and list(variants.values()) == [None, "Gold"]
    gold_variant = objects.variant_for(program.design, "Gold")
    assert objects.variant_for(program.design, "Bronze") == "base" and gold_variant != "base"

    def build(tier: str | None) -> dict[str, Any]:
        cid = objects.class_id(ISSUER, "lw", 3, 7, objects.variant_for(program.design, tier))
        return objects.loyalty_class(
            cid, program, tier, "https://img/logo", lambda s: f"https://img/{s}", lambda s: s
        )

    base, gold = build(None), build("Gold")
    assert base["hexBackgroundColor"] == "#3b2a20" and gold["hexBackgroundColor"] == "#d4af37"
    assert base["heroImage"]["sourceUri"]["uri"] == "https://img/" + "a" * 64
    assert (
        gold["heroImage"]["sourceUri"]["uri"] == "https://img/" + "b" * 64 and gold["rewardsTier"] == "Gold"
    )
    assert gold["id"] == f"{ISSUER}.lw-m3-p7-{gold_variant}"
    assert [m["id"] for m in base["textModulesData"]] == ["terms", "address"]
    assert base["linksModuleData"]["uris"][0] == {
        "id": "phone",
        "uri": "tel:+74951234567",
        "description": "+7 (495) 123-45-67",
    }
    assert base["merchantLocations"] == [{"latitude": 55.75, "longitude": 37.64}]
    assert (
        base["reviewStatus"] == "UNDER_REVIEW"
        and base["programLogo"]["sourceUri"]["uri"] == "https://img/logo"
    )
    obj = _object(program, _card(tier="Gold", spend=5000))
    assert obj["classId"] == gold["id"] and obj["barcode"]["type"] == "PDF_417"
    assert obj["heroImage"]["sourceUri"]["uri"] == "https://img/" + "b" * 64
