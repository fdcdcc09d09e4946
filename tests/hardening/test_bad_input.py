"""No input gives a 500: numbers outside signed 64-bit, control characters and huge images
are refused before the database (or Pillow) meets them, for the API and the pages alike."""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import pytest
from PIL import Image

from support import Shop

BIG = 2**63  # one past PostgreSQL's bigint


def _problem(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = dict(r.json())
    assert body["code"] == code, body
    return body


def test_huge_id_in_the_path_is_404(shop: Shop) -> None:
    _problem(shop.get(f"/api/v1/programs/{BIG}"), 404, "not_found")
    _problem(shop.get(f"/api/v1/campaigns/{BIG * 10}"), 404, "not_found")
    _problem(shop.get(f"/api/v1/programs/-{BIG + 1}"), 404, "not_found")


def test_huge_number_in_a_body_is_422(shop: Shop) -> None:
    body = _problem(
        shop.post("/api/v1/locations", {"name": "Bar", "address": None} | {"x": BIG}), 422, "validation_error"
    )
    assert body["errors"][0]["loc"] == ["x"]
    pid = shop.program()
    card = shop.card(pid)
    r = shop.post("/api/v1/purchases/quote", {"card": card["code"], "amount": 100, "location_id": BIG})
    _problem(r, 422, "validation_error")
    r = shop.post("/api/v1/purchases/quote", {"card": card["code"], "amount": -BIG - 1})
    _problem(r, 422, "validation_error")


def test_nul_and_control_characters_are_422(shop: Shop) -> None:
    pid = shop.program()
    shop.card(pid)
    _problem(
        shop.post("/api/v1/purchases/quote", {"card": "1\u0000", "amount": 100}), 422, "validation_error"
    )
    _problem(shop.get("/api/v1/cards", params={"phone": "\x00"}), 422, "validation_error")
    _problem(shop.post("/api/v1/locations", {"name": "Bar\u0000"}), 422, "validation_error")
    _problem(shop.post("/api/v1/locations", {"name": "Bar\u001b[31m"}), 422, "validation_error")
    raw = {"content": b'{"name": "\\ud800"}', "headers": {"Content-Type": "application/json"}}
    _problem(shop.call("POST", "/api/v1/locations", **raw), 422, "validation_error")
    _problem(shop.get("/api/v1/cards/%00"), 404, "not_found")
    # Tab, newline and carriage return are text.
    r = shop.post("/api/v1/locations", {"name": "Bar\tNorth\r\n"})
    assert r.status_code == 201, r.text


def test_pages_refuse_control_characters_too(client: Any) -> None:
    r = client.post("/login", data={"login": "owner\x00", "password": "x"})
    _problem(r, 422, "validation_error")
    r = client.post("/login", data={"login": str(BIG), "password": "x"})
    _problem(r, 422, "validation_error")


def test_segment_numbers_are_bounded(shop: Shop) -> None:
    seg = {"last_visit_days": {"min": 10**9}}
    _problem(shop.post("/api/v1/segments/preview", {"segment": seg}), 422, "validation_error")
    r = shop.post("/api/v1/campaigns", {"name": "x", "segment": seg, "header": "h", "body": "b"})
    _problem(r, 422, "validation_error")
    _problem(
        shop.post("/api/v1/segments/preview", {"segment": {"joined_days": {"max": 10**7}}}),
        422,
        "validation_error",
    )
    _problem(
        shop.post("/api/v1/segments/preview", {"segment": {"spend": {"min": 10**17}}}),
        422,
        "validation_error",
    )
    ok = shop.post("/api/v1/segments/preview", {"segment": {"last_visit_days": {"min": 30, "max": 36_000}}})
    assert ok.status_code == 200, ok.text


def _png_claiming(width: int, height: int) -> bytes:
    """A real 1x1 PNG whose header claims width x height (what a decompression bomb looks like to open())."""
    buf = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    ihdr = 8 + 8  # signature, then length + "IHDR"
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[12 : ihdr + 13]))
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", crc)
    return bytes(data)


@pytest.mark.parametrize("side", [20_000, 12_000])
def test_huge_images_are_image_too_large(shop: Shop, side: int) -> None:
    r = shop.call(
        "POST", "/api/v1/assets", content=_png_claiming(side, side), headers={"Content-Type": "image/png"}
    )
    _problem(r, 422, "image_too_large")


def test_a_normal_image_is_still_taken(shop: Shop) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (1125, 432), "white").save(buf, "PNG")
    r = shop.call("POST", "/api/v1/assets", content=buf.getvalue(), headers={"Content-Type": "image/png"})
    assert r.status_code == 201, r.text


def test_bodies_over_the_cap_are_413(shop: Shop) -> None:
    r = shop.post(
        "/api/v1/locations",
        content=b'{"name": "' + b"a" * 1_100_000 + b'"}',
        headers={"Content-Type": "application/json"},
    )
    _problem(r, 413, "payload_too_large")


def test_a_segment_names_only_our_programs(shop: Shop, client: Any) -> None:
    from support import new_shop

    other = new_shop(client)
    theirs = other.program()
    ours = shop.program()
    seg = {"program_ids": [ours, theirs]}
    _problem(shop.post("/api/v1/segments/preview", {"segment": seg}), 422, "validation_error")
    r = shop.post("/api/v1/campaigns", {"name": "x", "segment": seg, "header": "h", "body": "b"})
    _problem(r, 422, "validation_error")
    ok = shop.post("/api/v1/segments/preview", {"segment": {"program_ids": [ours]}})
    assert ok.status_code == 200, ok.text
