"""Card images: Apple's sizes at @1x/@2x/@3x, stamp strips, the caches."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from loyalwallet import db
from loyalwallet.programs import assets, images
from loyalwallet.programs.design import parse_design
from support import Shop


def _size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == "PNG"
        return img.size


@pytest.mark.parametrize("scale", [1, 2, 3])
def test_apple_sizes(scale: int) -> None:
    design = parse_design({"colours": {"background": "#102030"}})
    assert _size(images.icon(design, scale).data) == (29 * scale, 29 * scale)
    w, h = _size(images.logo(design, scale).data)
    assert w <= 160 * scale and h <= 50 * scale
    assert _size(images.strip(design, scale).data) == (375 * scale, 123 * scale)
    assert _size(images.strip(design, scale, stamps=2, required=6).data) == (375 * scale, 123 * scale)
    assert _size(images.strip(design, scale, coupon=True).data) == (375 * scale, 144 * scale)


def test_uploaded_images_are_fitted() -> None:
    design = parse_design({})
    wide = io.BytesIO()
    Image.new("RGB", (1000, 200), "red").save(wide, "PNG")
    src = images.Source.of(wide.getvalue())
    assert _size(images.logo(design, 3, source=src).data) == (480, 96)  # fits 480×150, keeps 5:1
    assert _size(images.icon(design, 2, source=src).data) == (58, 58)
    strip = images.strip(design, 2, source=src)
    assert _size(strip.data) == (750, 246)


def test_a_stamp_strip_shows_the_count_and_is_drawn_once() -> None:
    design = parse_design({"stamp_style": "star", "colours": {"background": "#223344"}})
    three = images.strip(design, 2, stamps=3, required=8)
    four = images.strip(design, 2, stamps=4, required=8)
    assert three.sha256 != four.sha256
    drawn = images.CACHE.renders
    again = images.strip(design, 2, stamps=3, required=8)
    assert again is three and images.CACHE.renders == drawn
    # More stamps than the card holds are drawn as a full card.
    assert (
        images.strip(design, 2, stamps=99, required=8).sha256
        == images.strip(design, 2, stamps=8, required=8).sha256
    )
    # A different look is a different image.
    other = parse_design({"stamp_style": "circle", "colours": {"background": "#223344"}})
    assert images.strip(other, 2, stamps=3, required=8).sha256 != three.sha256


def test_filled_marks_are_in_the_foreground_colour() -> None:
    design = parse_design(
        {
            "stamp_style": "circle",
            "colours": {"background": "#000000", "foreground": "#ff0000", "label": "#0000ff"},
        }
    )
    with Image.open(io.BytesIO(images.strip(design, 1, stamps=1, required=2).data)) as img:
        rgb = img.convert("RGB")
        left = rgb.getpixel((375 // 2 - 40, 123 // 2))
        reds = sum(1 for x in range(375 // 2) for y in range(123) if rgb.getpixel((x, y))[0] > 200)
        blues_right = sum(
            1 for x in range(375 // 2, 375) for y in range(123) if rgb.getpixel((x, y))[2] > 120
        )
    assert reds > 200 and blues_right > 50, left


def test_images_for_google_and_the_web_are_stored_and_served(shop: Shop) -> None:
    from loyalwallet.programs.models import Program

    program_id = shop.program("stamp")
    with db.transaction() as session:
        program = session.get(Program, program_id)
        assert program is not None
        strip = images.strip_for(session, program)
        url = images.image_url(
            session, shop.merchant_id, parse_design(program.design), "strip", required=6, stamps=2
        )
        again = images.image_url(
            session, shop.merchant_id, parse_design(program.design), "strip", required=6, stamps=2
        )
        assert url == again and assets.load(session, shop.merchant_id, url.rsplit("/", 1)[1]) is not None
    assert _size(strip.data) == (1125, 369)
    r = shop.client.get(url.replace("http://testserver", ""))
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"


def test_a_design_takes_only_the_merchants_own_uploaded_images(shop: Shop) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (300, 100), "blue").save(buf, "PNG")
    r = shop.client.post("/api/v1/assets", content=buf.getvalue(), headers=shop.headers("manager"))
    assert r.status_code == 201, r.text
    sha = r.json()["sha256"]
    program = shop.program("bonus")
    r = shop.call(
        "PATCH", f"/api/v1/programs/{program}", "manager", json={"design": {"images": {"logo": sha}}}
    )
    assert r.status_code == 200 and r.json()["design"]["images"]["logo"] == sha
    r = shop.call(
        "PATCH", f"/api/v1/programs/{program}", "manager", json={"design": {"images": {"logo": "0" * 64}}}
    )
    assert r.status_code == 422
    r = shop.call(
        "PATCH", f"/api/v1/programs/{program}", "manager", json={"design": {"colours": {"background": "red"}}}
    )
    assert r.status_code == 422
    assert (
        shop.client.post(
            "/api/v1/assets", content=b"not an image", headers=shop.headers("manager")
        ).status_code
        == 422
    )
    assert (
        shop.client.post(
            "/api/v1/assets", content=buf.getvalue(), headers=shop.headers("cashier")
        ).status_code
        == 403
    )
    # The logo is in the pass.
    card = shop.card(program)
    from fakes.wallet_device import open_pkpass

    p = open_pkpass(shop.client.get(card["apple_pass_url"]).content)
    assert _size(p.files["logo@3x.png"]) == (450, 150)
