"""Channels: the API, QR codes, the A6 table tent, short links, and invitation cards."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import select

from enrollment_support import BONUS_RULES, connect_wallets, join, sms_code, start
from loyalwallet import db
from loyalwallet.cards.models import Card
from loyalwallet.enrollment.models import Join
from support import new_shop, random_phone


def test_channel_api_roles_scoping_and_stats(client: TestClient, shop) -> None:
    pid = shop.program("bonus", BONUS_RULES)
    body = {"program_id": pid, "kind": "counter_qr", "name": "Till 1", "location_id": shop.location_id}
    assert shop.post("/api/v1/channels", body, role="cashier").status_code == 403
    r = shop.post("/api/v1/channels", body, role="manager")
    assert r.status_code == 201, r.text
    ch = r.json()
    assert ch["slug"] == "counter-qr-1" and ch["utm_source"] == "counter" and ch["utm_medium"] == "qr"
    assert re.fullmatch(r"http://testserver/j/[A-Za-z0-9_-]{8}", ch["short_url"])
    assert "channel=counter-qr-1" in ch["join_url"] and "utm_source=counter" in ch["join_url"]
    assert f'data-program="{pid}"' in ch["widget"]["script"] and "embed=1" in ch["widget"]["iframe"]
    second = shop.post("/api/v1/channels", {**body, "name": "Till 2"}).json()
    assert second["slug"] == "counter-qr-2"
    dup = shop.post("/api/v1/channels", {**body, "slug": "counter-qr-1"})
    assert dup.status_code == 409
    bad = shop.post("/api/v1/channels", {**body, "kind": "billboard"})
    assert bad.status_code == 422

    other = new_shop(client, "Other café")
    assert other.get(f"/api/v1/channels/{ch['id']}").status_code == 404
    assert (
        other.post("/api/v1/channels", {**body, "location_id": None}).status_code == 404
    )  # not their program
    assert other.get("/api/v1/channels").json()["items"] == []

    # A guest scans the QR and joins: the card records the channel; the numbers add up.
    r = client.get(ch["short_url"].replace("http://testserver", ""), follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith(f"/join/{pid}?channel=counter-qr-1")
    phone = random_phone()
    verify = start(client, pid, phone, channel="counter-qr-1", utm_source="counter", utm_medium="qr")
    client.post(verify, data={"code": sms_code(phone)})
    code = shop.get(f"/api/v1/cards?phone={phone}").json()["items"][0]["code"]
    with db.read() as session:
        assert session.scalar(select(Card.channel).where(Card.code == code)) == "counter-qr-1"
    listed = {c["id"]: c for c in shop.get(f"/api/v1/channels?program_id={pid}").json()["items"]}
    assert listed[ch["id"]]["stats"] == {"scans": 1, "cards": 1, "joins": 1}
    assert listed[second["id"]]["stats"] == {"scans": 0, "cards": 0, "joins": 0}

    patched = shop.call(
        "PATCH", f"/api/v1/channels/{ch['id']}", json={"name": "Main till", "utm_campaign": "winter"}
    )
    assert patched.json()["name"] == "Main till" and "utm_campaign=winter" in patched.json()["join_url"]
    assert shop.call("DELETE", f"/api/v1/channels/{ch['id']}").json()["status"] == "archived"
    assert ch["id"] not in {c["id"] for c in shop.get("/api/v1/channels").json()["items"]}
    gone = client.get(ch["short_url"].replace("http://testserver", ""))
    assert gone.status_code == 410


def test_qr_codes_and_the_a6_table_tent(client: TestClient, shop) -> None:
    pid = shop.program("bonus", BONUS_RULES)
    ch = shop.post("/api/v1/channels", {"program_id": pid, "kind": "table_tent", "name": "Tables"}).json()
    svg = shop.get(f"/api/v1/channels/{ch['id']}/qr.svg")
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert "<svg" in svg.text and "<path" in svg.text
    png = shop.get(f"/api/v1/channels/{ch['id']}/qr.png?scale=4")
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    pdf = shop.get(f"/api/v1/channels/{ch['id']}/table-tent.pdf?lang=ru")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    box = re.search(rb"/MediaBox \[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", pdf.content)
    assert box is not None
    width_mm, height_mm = (float(v) / 72 * 25.4 for v in box.groups())
    assert abs(width_mm - 105) < 0.5 and abs(height_mm - 148) < 0.5  # A6
    assert shop.get(f"/api/v1/channels/{ch['id']}/table-tent.pdf", role="cashier").status_code == 403


def test_invitation_card_then_form_makes_it_named(client: TestClient, shop) -> None:
    pid = shop.program("bonus", BONUS_RULES)
    connect_wallets(shop.merchant_id)  # the card page offers the pass
    ch = shop.post(
        "/api/v1/channels", {"program_id": pid, "kind": "counter_qr", "name": "Counter", "invitation": True}
    ).json()
    link = ch["short_url"].replace("http://testserver", "")
    page = client.get(link + "?lang=en")
    assert page.status_code == 200 and "Get the card now" in page.text
    r = client.post(link + "/card", follow_redirects=False)
    assert r.status_code == 303
    card_path = r.headers["location"].split("?")[0]
    card_page = client.get(card_path + "?lang=en")
    assert "Complete the card" in card_page.text and "pass.pkpass" in card_page.text
    invite = re.search(r'href="(/join/\d+\?[^"]*invite=[^"]+)"', card_page.text)
    assert invite is not None
    with db.read() as session:
        card = session.scalar(select(Card).where(Card.public_token == card_path.rsplit("/", 1)[1]))
        assert card is not None and card.customer_id is None and card.channel == ch["slug"]
        code = card.code
    # The anonymous card already works at the till.
    shop.buy(code, 20000)
    phone = random_phone()
    query = invite.group(1).split("?", 1)[1].replace("&amp;", "&")
    params = dict(p.split("=", 1) for p in query.split("&"))
    verify = start(client, pid, phone, name="Gleb", **params)
    client.post(verify, data={"code": sms_code(phone)})
    cards = shop.get(f"/api/v1/cards?phone={phone}").json()["items"]
    assert [c["code"] for c in cards] == [code]  # the same card, now named
    assert cards[0]["customer"]["name"] == "Gleb"
    assert cards[0]["balance"] == 10 + 100  # 5 % of 200 RUB in points, then the welcome gift
    assert "Complete the card" not in client.get(card_path + "?lang=en").text


def test_invitation_merges_into_an_existing_card(client: TestClient, shop) -> None:
    pid = shop.program("bonus", BONUS_RULES)
    phone = random_phone()
    _, kept_path = join(client, pid, phone, name="Dasha")
    kept = shop.get(f"/api/v1/cards?phone={phone}").json()["items"][0]
    ch = shop.post(
        "/api/v1/channels", {"program_id": pid, "kind": "counter_qr", "name": "Counter", "invitation": True}
    ).json()
    r = client.post(ch["short_url"].replace("http://testserver", "") + "/card", follow_redirects=False)
    invitation_path = r.headers["location"].split("?")[0]
    with db.read() as session:
        inv = session.scalar(select(Card).where(Card.public_token == invitation_path.rsplit("/", 1)[1]))
        assert inv is not None
    shop.buy(inv.code, 40000)  # 20 points on the invitation card
    verify = start(client, pid, phone, invite=inv.public_token)
    r = client.post(verify, data={"code": sms_code(phone)})
    assert 'data-outcome="merged"' in r.text
    cards = shop.get(f"/api/v1/cards?phone={phone}").json()["items"]
    assert [c["code"] for c in cards] == [kept["code"]]
    assert cards[0]["balance"] == kept["balance"] + 20
    old = shop.get(f"/api/v1/cards/{inv.code}").json()
    assert old["status"] == "blocked" and old["balance"] == 0
    # The old link leads to the kept card.
    r = client.get(invitation_path, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == kept_path
    with db.read() as session:
        j = session.scalars(select(Join).where(Join.invitation_card_id == inv.id)).one()
        assert not j.created
    from loyalwallet.cards.sweeps import check_ledger

    with db.read() as session:
        assert [b for b in check_ledger(session) if b["merchant_id"] == shop.merchant_id] == []
