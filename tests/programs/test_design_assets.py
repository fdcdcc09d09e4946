"""Card design validation and design images served by hash."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from loyalwallet import db
from loyalwallet.errors import DomainError
from loyalwallet.programs import assets
from loyalwallet.programs.design import look_for_tier, parse_design, rgb
from support import Shop


def test_design_defaults_and_tier_override() -> None:
    design = parse_design(
        {"colours": {"background": "#112233"}, "tiers": {"Gold": {"colours": {"background": "#d4af37"}}}}
    )
    assert rgb(design.colours.background) == "rgb(17, 34, 51)"
    assert look_for_tier(design, "Gold")[0].background == "#d4af37"
    assert look_for_tier(design, "Bronze")[0].background == "#112233"


@pytest.mark.parametrize(
    "raw",
    [
        {"colours": {"background": "red"}},
        {"barcode": "ean13"},
        {"locations": [{"latitude": 1, "longitude": 1}] * 11},
        {"links": [{"label": "x", "url": "javascript:alert(1)"}]},
        {"surprise": True},
    ],
)
def test_bad_designs(raw: dict) -> None:
    with pytest.raises(DomainError) as err:
        parse_design(raw)
    assert err.value.code == "validation_error"


def test_assets_stored_once_and_served(shop: Shop) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (10, 10), "red").save(buf, "PNG")
    with db.transaction() as session:
        a = assets.store(session, shop.merchant_id, buf.getvalue())
        b = assets.store(session, shop.merchant_id, buf.getvalue())
        sha = a.sha256
    assert a.id == b.id
    r = shop.client.get(f"/assets/{shop.merchant_id}/{sha}")
    assert (
        r.status_code == 200
        and r.headers["content-type"] == "image/png"
        and "immutable" in r.headers["cache-control"]
    )
    assert shop.client.get(f"/assets/{shop.merchant_id + 1}/{sha}").status_code == 404
    with pytest.raises(DomainError), db.transaction() as session:
        assets.store(session, shop.merchant_id, b"<svg>not an image</svg>")
