"""The web card: the page, its QR, balance, stamps, history, and what makes it a PWA."""

from __future__ import annotations

import json
import re

from fastapi.testclient import TestClient

from enrollment_support import BONUS_RULES, connect_wallets, join
from support import random_phone


def test_bonus_card_page(client: TestClient, shop) -> None:
    pid = shop.program("bonus", BONUS_RULES)
    connect_wallets(shop.merchant_id)
    phone = random_phone()
    _, path = join(client, pid, phone, name="Vera")
    code = shop.get(f"/api/v1/cards?phone={phone}").json()["items"][0]["code"]
    shop.buy(code, 35000)
    r = client.get(path + "?lang=en")
    assert r.status_code == 200
    assert r.headers["cache-control"] == "private, no-store" and r.headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    text = r.text
    assert "Vera" in text and "data-figure" in text and ">117<" in text  # 100 welcome + 17
    assert "Bronze" in text and "Welcome gift" in text and "Purchase" in text
    assert "<svg" in text and " ".join(code[i : i + 4] for i in range(0, len(code), 4)) in text
    assert f'href="{path}/pass.pkpass"' in text and f'href="{path}/google"' in text
    assert f'rel="manifest" href="{path}/manifest.webmanifest"' in text
    ru = client.get(path + "?lang=ru").text
    assert "История" in ru and "Приветственный подарок" in ru


def test_stamp_card_and_message(client: TestClient, shop) -> None:
    pid = shop.program("stamp", {"stamps_required": 6, "reward": {"name": "Free coffee"}})
    phone = random_phone()
    _, path = join(client, pid, phone)
    code = shop.get(f"/api/v1/cards?phone={phone}").json()["items"][0]["code"]
    shop.buy(code, 20000)
    shop.buy(code, 20000)
    text = client.get(path + "?lang=en").text
    # stamps_required 6: five cells to fill and the reward on the sixth visit.
    assert text.count('<li class="on">') == 2 and text.count('<li class="off">') == 3
    assert 'class="gift"' in text
    assert "Paid visits: 5, then on visit 6: Free coffee" in text
    # The join page (and the table tent, from the same offer lines) promise the same.
    assert "Paid visits: 5, then on visit 6: Free coffee" in client.get(f"/join/{pid}?lang=en").text
    assert "Оплаченных визитов: 5, на 6-й визит — Free coffee" in client.get(f"/join/{pid}?lang=ru").text


def test_pwa_manifest_icons_and_service_worker(client: TestClient, shop) -> None:
    pid = shop.program("bonus", BONUS_RULES)
    _, path = join(client, pid, random_phone())
    manifest = client.get(path + "/manifest.webmanifest")
    assert manifest.headers["content-type"].startswith("application/manifest+json")
    body = json.loads(manifest.text)
    assert body["start_url"] == path and body["display"] == "standalone"
    assert {i["sizes"] for i in body["icons"]} == {"192x192", "512x512"}
    icon = client.get(body["icons"][1]["src"])
    assert icon.status_code == 200 and icon.content[:8] == b"\x89PNG\r\n\x1a\n"
    from io import BytesIO

    from PIL import Image

    assert Image.open(BytesIO(icon.content)).size == (512, 512)
    sw = client.get("/c/sw.js")
    assert sw.status_code == 200 and "javascript" in sw.headers["content-type"] and "fetch" in sw.text
    assert client.get("/c/" + "x" * 32).status_code == 404
    assert client.get("/c/" + "x" * 32 + "/manifest.webmanifest").status_code == 404


def test_blocked_card_hides_the_code(client: TestClient, shop) -> None:
    pid = shop.program("bonus", BONUS_RULES)
    phone = random_phone()
    _, path = join(client, pid, phone)
    code = shop.get(f"/api/v1/cards?phone={phone}").json()["items"][0]["code"]
    shop.call("PATCH", f"/api/v1/cards/{code}", json={"status": "blocked"})
    text = client.get(path + "?lang=en").text
    assert (
        "This card is blocked" in text and "data-qr" not in text and not re.search(r"Add to \w+ Wallet", text)
    )


def test_pages_wear_the_merchant_design(client: TestClient, shop) -> None:
    import io

    from PIL import Image

    from loyalwallet import db
    from loyalwallet.programs import assets
    from loyalwallet.programs.models import Program

    pid = shop.program("bonus", BONUS_RULES)
    buf = io.BytesIO()
    Image.new("RGB", (120, 40), "#aa3300").save(buf, format="PNG")
    with db.transaction() as session:
        logo = assets.store(session, shop.merchant_id, buf.getvalue())
        program = session.get(Program, pid)
        assert program is not None
        program.design = {
            "colours": {"background": "#123456", "foreground": "#fefefe", "label": "#ffcc00"},
            "images": {"logo": logo.sha256},
            "terms": "Points live a year.",
        }
        program.version += 1
        sha = logo.sha256
    join_page = client.get(f"/join/{pid}")
    brand_css = "/brand/123456-fefefe-ffcc00.css"
    assert brand_css in join_page.text and f'src="/assets/{shop.merchant_id}/{sha}"' in join_page.text
    assert "--brand: #123456" in client.get(brand_css).text
    assert client.get(f"/assets/{shop.merchant_id}/{sha}").status_code == 200
    _, path = join(client, pid, random_phone())
    page = client.get(path)
    assert brand_css in page.text and "Points live a year." in page.text
    icon = client.get(path + "/icon-192.png")
    assert icon.status_code == 200
