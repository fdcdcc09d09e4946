"""Live updates: every card change reaches Google through the outbox, whatever Google does."""

from __future__ import annotations

from typing import Any

from loyalwallet import db
from loyalwallet.programs.models import Program
from support import Shop
from wallet.google.helpers import deliveries, drain, make_due, register_key

TIERED = {
    "tiers": [
        {"name": "Bronze", "min_spend": 0, "cashback_pct": 5},
        {"name": "Silver", "min_spend": 100_000, "cashback_pct": 10},
    ]
}


def _object(fake: Any, code: str) -> dict[str, Any]:
    (obj,) = [o for o in fake.objects.values() if o["accountId"] == code]
    return obj


def _enrolled(shop: Shop, kind: str = "bonus", rules: dict[str, Any] | None = None) -> dict[str, Any]:
    card = shop.card(shop.program(kind, rules))
    drain()
    return card


def test_a_new_card_is_inserted_with_its_class(gshop) -> None:
    shop, fake = gshop.shop, gshop.fake
    card = _enrolled(shop, "stamp", {"stamps_required": 6, "welcome_stamps": 1})
    obj = _object(fake, card["code"])
    cls = fake.classes[obj["classId"]]
    assert cls["reviewStatus"] == "APPROVED" and cls["issuerName"] == "Test café"
    assert cls["programLogo"]["sourceUri"]["uri"].startswith(f"http://testserver/assets/{shop.merchant_id}/")
    assert obj["loyaltyPoints"]["balance"] == {"string": "1/5"}  # stamps_required 6: five to collect
    assert fake.token_requests == 1
    # The default logo Google fetches is served by us.
    logo_path = cls["programLogo"]["sourceUri"]["uri"].removeprefix("http://testserver")
    logo = shop.client.get(logo_path)
    assert logo.status_code == 200 and logo.headers["content-type"] == "image/png"


def test_a_stamp_card_shows_its_own_cups_as_the_hero_image(gshop) -> None:
    shop, fake = gshop.shop, gshop.fake
    card = _enrolled(shop, "stamp", {"stamps_required": 6, "welcome_stamps": 1})
    first = _object(fake, card["code"])["heroImage"]["sourceUri"]["uri"]
    shop.buy(card["code"], 10000)
    drain()
    second = _object(fake, card["code"])["heroImage"]["sourceUri"]["uri"]
    assert first != second  # 1/6 and 2/6 are different pictures
    image = shop.client.get(second.removeprefix("http://testserver"))
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"


def test_a_purchase_patches_the_object_with_the_new_balance(gshop) -> None:
    shop, fake = gshop.shop, gshop.fake
    card = _enrolled(shop)
    bought = shop.buy(card["code"], 50000)
    assert bought["card"]["balance"] > 0
    drain()
    patches = fake.calls_to("PATCH", "/loyaltyObject/")
    assert patches, fake.calls
    assert patches[-1].body["loyaltyPoints"]["balance"] == {"int": bought["card"]["balance"]}
    assert _object(fake, card["code"])["loyaltyPoints"]["balance"] == {"int": bought["card"]["balance"]}
    assert fake.token_requests == 1  # the token is cached
    assert all(d.status == "done" for d in deliveries(shop.merchant_id))


def test_an_outage_is_retried_with_backoff_and_nothing_is_lost(gshop) -> None:
    shop, fake = gshop.shop, gshop.fake
    card = _enrolled(shop)
    fake.fail(503, times=2, method="PATCH")
    fake.fail(500, times=1, path="/token")  # and the token endpoint hiccups once on the way
    client_tokens = __import__("loyalwallet.wallet.google.client", fromlist=["clear_tokens"])
    client_tokens.clear_tokens()
    bought = shop.buy(card["code"], 70000)
    drain()
    (pending,) = [d for d in deliveries(shop.merchant_id) if d.status == "pending"]
    assert "500" in (pending.last_error or "") and pending.next_attempt_at > db.utcnow()
    for _ in range(4):
        make_due(shop.merchant_id)
        drain()
    assert all(d.status == "done" for d in deliveries(shop.merchant_id))
    assert _object(fake, card["code"])["loyaltyPoints"]["balance"] == {"int": bought["card"]["balance"]}


def test_a_timeout_is_retried(gshop) -> None:
    shop, fake = gshop.shop, gshop.fake
    card = _enrolled(shop)
    fake.fail(None, times=1, method="PATCH", delay=1.5)  # longer than the client's 1 s timeout
    bought = shop.buy(card["code"], 20000)
    drain()
    (pending,) = [d for d in deliveries(shop.merchant_id) if d.status == "pending"]
    assert "Timeout" in (pending.last_error or "")
    make_due(shop.merchant_id)
    drain()
    assert all(d.status == "done" for d in deliveries(shop.merchant_id))
    assert _object(fake, card["code"])["loyaltyPoints"]["balance"] == {"int": bought["card"]["balance"]}


def test_a_client_error_goes_to_the_dead_letters(gshop) -> None:
    shop, fake = gshop.shop, gshop.fake
    card = _enrolled(shop)
    fake.fail(400, times=1, method="PATCH")
    shop.buy(card["code"], 20000)
    drain()
    (dead,) = [d for d in deliveries(shop.merchant_id) if d.status == "dead"]
    assert dead.topic == "google.patch" and dead.attempts == 1
    assert "permanent" in (dead.last_error or "") and "400" in (dead.last_error or "")


def test_a_key_google_refuses_is_a_dead_letter_with_a_clear_reason(gshop) -> None:
    shop, fake = gshop.shop, gshop.fake
    fake.keys.clear()  # Google does not know the key
    shop.card(shop.program("stamp"))
    drain()
    (dead,) = [d for d in deliveries(shop.merchant_id) if d.status == "dead"]
    assert "refused the service-account key" in (dead.last_error or "") and "invalid_grant" in dead.last_error


def test_an_object_gone_at_google_is_inserted_again(gshop) -> None:
    shop, fake = gshop.shop, gshop.fake
    card = _enrolled(shop)
    oid = _object(fake, card["code"])["id"]
    del fake.objects[oid]
    bought = shop.buy(card["code"], 30000)
    drain()
    assert [c.status for c in fake.calls if oid in c.path or (c.body or {}).get("id") == oid][-2:] == [
        404,
        200,
    ]
    assert fake.objects[oid]["loyaltyPoints"]["balance"] == {"int": bought["card"]["balance"]}


def test_an_object_already_at_google_is_patched(gshop) -> None:
    shop, fake = gshop.shop, gshop.fake
    card = shop.card(shop.program("bonus"))
    # The guest saved the link before our insert went out: Google made the object from the JWT.
    from loyalwallet.wallet.google.issuer import build_object, issuer_for
    from loyalwallet.wallet.google.sync import _class_bodies

    with db.read() as session:
        from sqlalchemy import select

        from loyalwallet.cards.models import Card

        c = session.scalar(
            select(Card).where(Card.merchant_id == shop.merchant_id, Card.code == card["code"])
        )
        issuer = issuer_for(session, shop.merchant_id)
        program = session.get(Program, c.program_id)
        obj = build_object(session, issuer, c, program)
        classes = _class_bodies(session, issuer, program)
    for cid, _variant, body in classes:
        fake.classes[cid] = {**body, "reviewStatus": "APPROVED"}
    fake.objects[obj["id"]] = {**obj, "loyaltyPoints": {"label": "x", "balance": {"int": 999}}}
    drain()
    statuses = [c.status for c in fake.calls if "/loyaltyObject" in c.path]
    assert statuses == [409, 200] and fake.calls[-1].method == "PATCH"
    assert fake.objects[obj["id"]]["loyaltyPoints"]["balance"] == {"int": 0}


def test_a_tier_with_its_own_look_moves_the_card_to_its_class(gshop) -> None:
    shop, fake = gshop.shop, gshop.fake
    r = shop.post(
        "/api/v1/programs",
        {
            "kind": "bonus",
            "name": "Tiers",
            "rules": TIERED,
            "design": {
                "colours": {"background": "#111111"},
                "tiers": {"Silver": {"colours": {"background": "#c0c0c0"}}},
            },
        },
    )
    assert r.status_code == 201, r.text
    card = shop.card(r.json()["id"])
    drain()
    base_class = _object(fake, card["code"])["classId"]
    assert fake.classes[base_class]["hexBackgroundColor"] == "#111111"
    shop.buy(card["code"], 150_000)
    drain()
    obj = _object(fake, card["code"])
    assert obj["classId"] != base_class and obj["secondaryLoyaltyPoints"]["balance"] == {"string": "Silver"}
    silver = fake.classes[obj["classId"]]
    assert silver["hexBackgroundColor"] == "#c0c0c0" and silver["rewardsTier"] == "Silver"


def test_unchanged_cards_are_not_sent_again(gshop) -> None:
    shop, fake = gshop.shop, gshop.fake
    card = _enrolled(shop)
    before = len(fake.calls)
    with db.transaction() as session:
        from loyalwallet.outbox.service import enqueue

        for _ in range(3):
            enqueue(session, shop.merchant_id, "card.changed", {"card_id": _card_id(shop, card["code"])})
    drain()
    assert len(fake.calls) == before


def _card_id(shop: Shop, code: str) -> int:
    from sqlalchemy import select

    from loyalwallet.cards.models import Card

    with db.read() as session:
        return int(
            session.scalar(select(Card.id).where(Card.merchant_id == shop.merchant_id, Card.code == code))
        )


def test_importing_a_key_sends_the_classes_of_existing_programs(shop: Shop, google) -> None:
    program = shop.program("bonus", TIERED)
    key_file = register_key(google)
    from loyalwallet.wallet.google.issuer import import_key, remove_issuer

    with db.transaction() as session:
        import_key(session, key_file, google.issuer_id, shop.merchant_id)
    try:
        drain()
        (cls,) = google.classes.values()
        assert cls["id"] == f"{google.issuer_id}.lw-m{shop.merchant_id}-p{program}"
        assert google.objects == {}  # no card has a link yet
    finally:
        with db.transaction() as session:
            remove_issuer(session, shop.merchant_id)


def test_a_blocked_card_becomes_inactive_at_google(gshop) -> None:
    shop, fake = gshop.shop, gshop.fake
    card = _enrolled(shop)
    r = shop.call("PATCH", f"/api/v1/cards/{card['code']}", json={"status": "blocked", "reason": "lost"})
    assert r.status_code == 200, r.text
    drain()
    assert _object(fake, card["code"])["state"] == "INACTIVE"


def test_if_google_will_not_move_an_object_to_its_tier_class_the_rest_still_updates(gshop) -> None:
    shop, fake = gshop.shop, gshop.fake
    fake.allow_class_moves = False
    design = {"tiers": {"Silver": {"colours": {"background": "#c0c0c0"}}}}
    r = shop.post("/api/v1/programs", {"kind": "bonus", "name": "Tiers", "rules": TIERED, "design": design})
    card = shop.card(r.json()["id"])
    drain()
    base_class = _object(fake, card["code"])["classId"]
    bought = shop.buy(card["code"], 150_000)
    drain()
    obj = _object(fake, card["code"])
    assert obj["classId"] == base_class and obj["loyaltyPoints"]["balance"] == {
        "int": bought["card"]["balance"]
    }
    assert obj["secondaryLoyaltyPoints"]["balance"] == {"string": "Silver"}
    assert all(d.status == "done" for d in deliveries(shop.merchant_id))
