"""pass.json by Apple's rules: field keys, storeCard limits, barcodes, locations, alerts."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest

from loyalwallet.programs.design import parse_design
from loyalwallet.wallet.apple import passes

ISSUER = passes.Issuer(
    "pass.dev.loyalwallet", "LWDEV00001", "Кофейня «Зерно»", "https://x.example/wallet/apple"
)
PLACES = tuple(passes.Place(55.75 + i / 1000, 37.64, f"Зерно #{i}") for i in range(10))
FIELDS = ["balance", "tier", "discount", "stamps", "holder", "next_tier", "rewards"]


def facts(kind: str, **kw: Any) -> passes.CardFacts:
    base: dict[str, Any] = {
        "kind": kind,
        "program_name": "Зерно",
        "serial": "S" * 22,
        "auth_token": "T" * 32,
        "code": "1234567890128",
        "balance": 240,
        "stamps": 4,
        "stamps_required": 6 if kind == "stamp" else None,
        "tier": None if kind == "stamp" else "Gold",
        "discount": "10%" if kind == "discount" else None,
        "cashback": "5%" if kind == "bonus" else None,
        "holder": "Анна",
        "next_tier": "Platinum: 3 500.00 ₽" if kind != "stamp" else None,
        "rewards": ("Free coffee",),
        "message": "Double points on Friday!",
        "web_card_url": "https://x.example/c/abc",
        "places": PLACES,
    }
    base.update(kw)
    return passes.CardFacts(**base)


def all_fields(pj: dict[str, Any]) -> list[dict[str, Any]]:
    style = pj.get("storeCard") or pj["coupon"]
    return [f for part in style.values() for f in part]


DESIGNS = [
    {},
    {"front_fields": FIELDS[:6]},
    {"front_fields": list(reversed(FIELDS))[:6]},
    {"front_fields": ["holder"], "barcode": "code128"},
    {
        "front_fields": ["tier", "discount", "holder", "next_tier", "rewards", "balance"],
        "barcode": "aztec",
        "terms": "Points live a year.",
        "address": "Москва, Покровка 17",
        "phone": "+7 495 123-45-67",
        "links": [{"label": f"Link {i}", "url": f"https://x.example/{i}"} for i in range(5)],
        "locations": [{"latitude": 55.7, "longitude": 37.6, "relevant_text": "Зайдите!"}] * 10,
    },
]


@pytest.mark.parametrize(("kind", "raw"), list(itertools.product(["bonus", "discount", "stamp"], DESIGNS)))
def test_every_kind_and_design_gives_a_valid_store_card(kind: str, raw: dict[str, Any]) -> None:
    design = parse_design(raw)
    for f in (facts(kind), facts(kind, holder=None, message=None, rewards=(), next_tier=None)):
        pj = passes.store_card(ISSUER, f, design, design.colours)
        assert passes.problems(pj) == []
        keys = [x["key"] for x in all_fields(pj)]
        assert len(keys) == len(set(keys))
        card = pj["storeCard"]
        assert len(card.get("headerFields", [])) <= 3 and len(card.get("primaryFields", [])) <= 1
        assert len(card.get("secondaryFields", [])) + len(card.get("auxiliaryFields", [])) <= 4
        assert all(card.values())  # no empty field lists
        assert pj["formatVersion"] == 1 and pj["sharingProhibited"] is True
        assert pj["backgroundColor"].startswith("rgb(")
        assert len(pj.get("locations", [])) <= 10


def test_the_headline_figure_alerts_on_change() -> None:
    design = parse_design({})
    for kind, key, value in (
        ("bonus", "balance", 240),
        ("discount", "discount", "10%"),
        ("stamp", "stamps", "4/5"),  # stamps_required 6: five cells
    ):
        pj = passes.store_card(ISSUER, facts(kind), design, design.colours)
        head = pj["storeCard"]["headerFields"][0]
        assert (head["key"], head["value"]) == (key, value)
        assert "%@" in head["changeMessage"]
    bonus = passes.store_card(ISSUER, facts("bonus"), design, design.colours)
    tier = bonus["storeCard"]["primaryFields"][0]
    assert tier["key"] == "tier" and "%@" in tier["changeMessage"]
    news = next(f for f in bonus["storeCard"]["backFields"] if f["key"] == "back_message")
    assert news == {
        "key": "back_message",
        "label": "News",
        "value": "Double points on Friday!",
        "changeMessage": "%@",
    }


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("qr", "PKBarcodeFormatQR"),
        ("pdf417", "PKBarcodeFormatPDF417"),
        ("aztec", "PKBarcodeFormatAztec"),
        ("code128", "PKBarcodeFormatCode128"),
    ],
)
def test_barcode_formats(name: str, fmt: str) -> None:
    design = parse_design({"barcode": name})
    pj = passes.store_card(ISSUER, facts("bonus"), design, design.colours)
    first = pj["barcodes"][0]
    assert first == {
        "format": fmt,
        "message": "1234567890128",
        "messageEncoding": "iso-8859-1",
        "altText": "1234567890128",
    }
    if name == "code128":  # Apple Watch falls back to the QR code
        assert pj["barcodes"][1]["format"] == "PKBarcodeFormatQR"
    else:
        assert len(pj["barcodes"]) == 1


def test_qr_is_the_default_and_web_service_is_optional() -> None:
    design = parse_design({})
    issuer = passes.Issuer("pass.x.y", "TEAM", "Org", None)
    pj = passes.store_card(issuer, facts("bonus"), design, design.colours)
    assert pj["barcodes"][0]["format"] == "PKBarcodeFormatQR"
    assert "webServiceURL" not in pj and "authenticationToken" not in pj
    assert passes.problems(pj) == []


def test_at_most_ten_locations() -> None:
    design = parse_design({})
    many = tuple(passes.Place(1.0, 2.0, "x") for _ in range(25))
    pj = passes.store_card(ISSUER, facts("bonus", places=many), design, design.colours)
    assert len(pj["locations"]) == 10


def test_a_tier_changes_the_colours() -> None:
    from loyalwallet.programs.design import look_for_tier

    design = parse_design(
        {
            "tiers": {
                "Gold": {"colours": {"background": "#d4af37", "foreground": "#000000", "label": "#333333"}}
            }
        }
    )
    colours, _ = look_for_tier(design, "Gold")
    pj = passes.store_card(ISSUER, facts("bonus"), design, colours)
    assert pj["backgroundColor"] == "rgb(212, 175, 55)"


def test_problems_finds_what_apple_refuses() -> None:
    design = parse_design({})
    good = passes.store_card(ISSUER, facts("bonus"), design, design.colours)
    bad = {**good, "storeCard": {**good["storeCard"]}}
    bad["storeCard"]["auxiliaryFields"] = [
        {"key": "holder", "label": "x", "value": 1},
        *[{"key": f"a{i}", "label": "x", "value": 1} for i in range(4)],
    ]
    bad["storeCard"]["primaryFields"] = [
        {
            "key": "p",
            "label": "x",
            "value": 1,
            "textAlignment": "PKTextAlignmentRight",
            "changeMessage": "no placeholder",
        }
    ]
    bad["locations"] = [{"latitude": 1, "longitude": 2}] * 11
    bad["authenticationToken"] = "short"
    bad["barcodes"] = [{"format": "EAN13", "message": "Ж", "messageEncoding": "utf-8"}]
    found = " | ".join(passes.problems(bad))
    for text in (
        "not unique",
        "more than 4 secondary",
        "lacks %@",
        "textAlignment",
        "more than 10 locations",
        "at least 16",
        "unknown barcode format",
        "ISO-8859-1",
    ):
        assert text in found, text


def test_a_coupon_pass() -> None:
    design = parse_design({})
    until = dt.datetime(2026, 12, 31, 21, 0, tzinfo=dt.UTC)
    f = passes.CouponFacts(
        serial="cpn.42",
        auth_token="A" * 32,
        code="SPRING20",
        name="Spring offer",
        offer="−20%",
        status="available",
        valid_until=until,
        min_amount="500.00 ₽",
        uses_left=3,
        personal=True,
    )
    pj = passes.coupon(ISSUER, f, design, design.colours)
    assert passes.problems(pj) == []
    assert "storeCard" not in pj and pj["coupon"]["primaryFields"][0]["value"] == "−20%"
    assert pj["expirationDate"] == "2026-12-31T21:00:00Z" and "voided" not in pj
    used = passes.coupon(
        ISSUER, passes.CouponFacts(**{**f.__dict__, "status": "used"}), design, design.colours
    )
    assert used["voided"] is True and passes.problems(used) == []


def test_a_stamp_pass_says_when_the_reward_comes() -> None:
    design = parse_design({"front_fields": ["stamps", "rewards", "holder"]})
    terms = "Paid visits: 5, then on visit 6: Free coffee"
    pj = passes.store_card(ISSUER, facts("stamp", stamp_terms=terms), design, design.colours)
    back = {f["key"]: f for f in pj["storeCard"]["backFields"]}
    assert back["back_stamp_terms"]["value"] == terms and back["back_stamp_terms"]["label"] == "How it works"
    assert pj["storeCard"]["headerFields"][0]["value"] == "4/5"
    assert all(f["key"] not in ("balance", "tier") for f in all_fields(pj))
