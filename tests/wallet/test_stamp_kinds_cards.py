"""A card with several stamp kinds (issue 18) on the Apple pass, the Google object and
the web card: each kind by its name, "Coffee 1/5 · Pastry 3/4"."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from enrollment_support import join
from loyalwallet import db
from loyalwallet.cards.models import Card
from loyalwallet.merchants.models import Merchant
from loyalwallet.programs.design import parse_design
from loyalwallet.programs.models import Program
from loyalwallet.wallet.apple import passes
from loyalwallet.wallet.apple.service import card_facts
from loyalwallet.wallet.google import issuer, objects
from support import Shop, random_phone

RULES: dict[str, Any] = {
    "stamps_required": 6,
    "kind_name": "Coffee",
    "qualifying": {"categories": ["coffee"]},
    "reward": {"kind": "free_item", "name": "Free coffee"},
    "kinds": [
        {
            "name": "Pastry",
            "stamps_required": 5,
            "qualifying": {"categories": ["pastry"]},
            "reward": {"kind": "free_item", "name": "Free pastry"},
        }
    ],
}
APPLE = passes.Issuer("pass.dev.loyalwallet", "LWDEV00001", "Кофейня", "https://x.example/wallet/apple")


def stamped_card(client: TestClient, shop: Shop, rules: dict[str, Any]) -> tuple[str, str]:
    """A guest's card (joined on the web) with a latte and three muffins bought."""
    pid = shop.program("stamp", rules)
    phone = random_phone()
    _, path = join(client, pid, phone)
    code = shop.get(f"/api/v1/cards?phone={phone}").json()["items"][0]["code"]
    items = [
        {"sku": "LATTE", "category": "coffee", "qty": 1, "price": 20_000},
        {"sku": "MUFFIN", "category": "pastry", "qty": 3, "price": 10_000},
    ]
    shop.buy(code, 50_000, items=items)
    return code, path


def built(shop: Shop, code: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Apple pass.json and the Google loyaltyObject of the card, as the services build them."""
    with db.read() as session:
        card = session.scalars(
            select(Card).where(Card.code == code, Card.merchant_id == shop.merchant_id)
        ).one()
        program = session.get(Program, card.program_id)
        merchant = session.get(Merchant, card.merchant_id)
        assert program is not None and merchant is not None
        design = parse_design(program.design)
        pj = passes.store_card(
            APPLE, card_facts(session, card, program, merchant, design), design, design.colours
        )
        gfacts = issuer.card_facts(session, card)
        pfacts = issuer.program_facts(session, program, merchant)
        obj = objects.loyalty_object("o", "c", pfacts, gfacts, lambda sha: f"https://img/{sha}", lambda s: s)
    return pj, obj


def test_each_kind_on_the_pass_the_google_object_and_the_web_card(client: TestClient, shop: Shop) -> None:
    code, path = stamped_card(client, shop, RULES)
    pj, obj = built(shop, code)
    store = pj["storeCard"]
    assert store["headerFields"][0] == {
        "key": "stamps",
        "label": "Coffee",
        "value": "1/5",
        "changeMessage": "Coffee: %@",
    }
    assert store["secondaryFields"][0] == {
        "key": "stamps_2",
        "label": "Pastry",
        "value": "3/4",
        "changeMessage": "Pastry: %@",
    }
    back = {f["key"]: f["value"] for f in store["backFields"]}
    assert back["back_stamp_kinds"] == "Coffee 1/5 · Pastry 3/4"
    # What each kind promises, one line each (in the merchant's language).
    terms = back["back_stamp_terms"].split("\n")
    assert [t.split(":")[0] for t in terms] == ["Coffee", "Pastry"] and "4" in terms[1]
    assert passes.problems(pj) == []  # what Apple would refuse

    assert obj["loyaltyPoints"] == {"label": "Coffee", "balance": {"string": "1/5"}}
    assert obj["secondaryLoyaltyPoints"] == {"label": "Pastry", "balance": {"string": "3/4"}}
    assert {"id": "stamp_kinds", "header": "Stamps", "body": "Coffee 1/5 · Pastry 3/4"} in obj[
        "textModulesData"
    ]

    text = client.get(path + "?lang=en").text
    assert "Coffee 1/5 · Pastry 3/4" in text
    assert text.count('data-stamp-kind="') == 2
    assert text.count('<li class="on">') == 1 + 3 and text.count('<li class="off">') == 4 + 1
    assert "Stamps to collect: 5, then on the next visit: Free coffee" in text
    assert "Stamps to collect: 4, then on the next visit: Free pastry" in text


def test_a_single_kind_card_shows_what_it_did(client: TestClient, shop: Shop) -> None:
    code, path = stamped_card(client, shop, {"stamps_required": 6})
    pj, obj = built(shop, code)
    assert pj["storeCard"]["headerFields"][0]["label"] == "Stamps"
    assert pj["storeCard"]["headerFields"][0]["value"] == "1/5"
    assert all(f["key"] != "back_stamp_kinds" for f in pj["storeCard"]["backFields"])
    assert obj["loyaltyPoints"] == {"label": "Stamps", "balance": {"string": "1/5"}}
    assert all(m["id"] != "stamp_kinds" for m in obj.get("textModulesData", []))
    text = client.get(path + "?lang=en").text
    assert "data-stamp-kind" not in text and text.count('<li class="on">') == 1


def test_the_pass_strip_has_a_band_of_cups_per_kind(client: TestClient, shop: Shop) -> None:
    from io import BytesIO

    from PIL import Image

    from enrollment_support import connect_wallets
    from loyalwallet.programs import images
    from loyalwallet.wallet.apple.service import card_pass_json

    code, _ = stamped_card(client, shop, RULES)
    connect_wallets(shop.merchant_id)
    with db.read() as session:
        card = session.scalars(
            select(Card).where(Card.code == code, Card.merchant_id == shop.merchant_id)
        ).one()
        program = session.get(Program, card.program_id)
        assert program is not None
        _pj, files, _cert = card_pass_json(session, card, program)
        design = parse_design(program.design)
    # The pass's strip is the two-band one of this card: Coffee 1 of 5, Pastry 3 of 4.
    bands = images.strip(design, 2, stamps=(1, 3), required=(5, 4))
    assert files.hashes["strip@2x.png"] == bands.sha1
    single = images.strip(design, 2, stamps=1, required=5)
    assert bands.data != single.data and (bands.width, bands.height) == (single.width, single.height)
    # More cups filled in the lower band (pastry) than in the upper (coffee).
    img = Image.open(BytesIO(bands.data)).convert("L")
    empty = Image.open(BytesIO(images.strip(design, 2, stamps=(0, 0), required=(5, 4)).data)).convert("L")

    def changed(top: int, bottom: int) -> int:
        a = img.crop((0, top, img.width, bottom)).tobytes()
        b = empty.crop((0, top, img.width, bottom)).tobytes()
        return sum(1 for x, y in zip(a, b, strict=True) if abs(x - y) > 30)

    upper, lower = changed(0, img.height // 2), changed(img.height // 2, img.height)
    assert 0 < upper < lower


def test_the_google_hero_image_has_a_band_per_kind(client: TestClient, shop: Shop) -> None:
    from urllib.parse import urlsplit

    from loyalwallet.programs import images

    code, _ = stamped_card(client, shop, RULES)
    _pj, obj = built(shop, code)
    uri = obj["heroImage"]["sourceUri"]["uri"]
    assert uri.endswith("/stamps/1.png?kinds=3")
    parts = urlsplit(uri)
    r = client.get(f"{parts.path}?{parts.query}")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    with db.read() as session:
        program = session.scalars(select(Program).where(Program.merchant_id == shop.merchant_id)).one()
        design = parse_design(program.design)
    assert r.content == images.strip(design, 3, stamps=(1, 3), required=(5, 4)).data
    # Counts beyond a kind's cells, or a kind too many, are no image.
    assert client.get(f"{parts.path}?kinds=9").status_code == 404
    assert client.get(f"{parts.path}?kinds=1-1").status_code == 404
    assert client.get(parts.path).status_code == 404
