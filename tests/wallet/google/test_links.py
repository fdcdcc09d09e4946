"""The card's google_save_url: an RS256 save JWT, signed once, and the redirect link."""

from __future__ import annotations

import jwt
import pytest
from sqlalchemy import delete, select

from loyalwallet import db
from loyalwallet.outbox.models import OutboxMessage
from loyalwallet.wallet.google import links
from loyalwallet.wallet.google.issuer import import_key, remove_issuer, reset_cache
from loyalwallet.wallet.google.models import GoogleObject
from support import Shop
from wallet.google.helpers import drain

SAVE = "https://pay.google.com/gp/v/save/"


def _claims(url: str, public_key: object) -> dict:
    assert url.startswith(SAVE), url
    return jwt.decode(url[len(SAVE) :], public_key, algorithms=["RS256"], audience="google")


def _redirect_url(card: dict) -> str:
    return card["web_card_url"] + "/google"


def test_a_new_card_gets_a_save_jwt_that_verifies_and_carries_the_code(gshop) -> None:
    shop = gshop.shop
    program = shop.program(
        "bonus", {"tiers": [{"name": "Base", "min_spend": 0, "cashback_pct": 5}], "welcome_points": 50}
    )
    card = shop.card(program, name="Анна")
    token = card["google_save_url"][len(SAVE) :]
    claims = _claims(card["google_save_url"], gshop.public_key)
    key_file = __import__("json").loads(gshop.key_file)
    assert claims["iss"] == key_file["client_email"]
    assert claims["typ"] == "savetowallet" and claims["aud"] == "google"
    assert claims["origins"] == ["http://testserver"]
    assert jwt.get_unverified_header(token)["kid"] == key_file["private_key_id"]
    (obj,) = claims["payload"]["loyaltyObjects"]
    assert obj["barcode"] == {"type": "QR_CODE", "value": card["code"], "alternateText": card["code"]}
    assert obj["accountId"] == card["code"] and "accountName" not in obj  # no personal data in links
    assert obj["loyaltyPoints"]["balance"] == {"int": 50}
    assert obj["id"].startswith(gshop.issuer_id + ".") and obj["classId"].startswith(gshop.issuer_id + ".")
    assert obj["state"] == "ACTIVE"
    drain()  # the name goes to Google over REST
    assert gshop.fake.objects[obj["id"]]["accountName"] == "Анна"


def test_the_link_is_signed_once_and_reused(gshop) -> None:
    shop = gshop.shop
    card = shop.card(shop.program("bonus"))
    again = shop.get(f"/api/v1/cards/{card['code']}").json()
    bought = shop.buy(card["code"], 30000)
    assert again["google_save_url"] == card["google_save_url"] == bought["card"]["google_save_url"]
    with db.read() as session:
        rows = session.scalars(select(GoogleObject).where(GoogleObject.merchant_id == shop.merchant_id)).all()
    assert len(rows) == 1 and rows[0].jwt_kind == "full"


def test_without_google_the_link_explains_that_it_is_not_set_up(shop: Shop) -> None:
    card = shop.card(shop.program("stamp"))
    assert card["google_save_url"] == _redirect_url(card)
    r = shop.client.get(_redirect_url(card).removeprefix("http://testserver") + "?lang=en")
    assert r.status_code == 503
    assert "Google Wallet is not set up yet" in r.text and card["web_card_url"] in r.text
    ru = shop.client.get(_redirect_url(card).removeprefix("http://testserver") + "?lang=ru")
    assert "Google Кошелёк ещё не подключён" in ru.text


def test_unknown_card_link_is_a_404_page(shop: Shop) -> None:
    r = shop.client.get("/c/nope-nope/google?lang=en")
    assert r.status_code == 404 and "Card not found" in r.text


def test_the_redirect_link_sends_the_guest_to_the_save_link(gshop) -> None:
    shop = gshop.shop
    card = shop.card(shop.program("stamp"))
    path = _redirect_url(card).removeprefix("http://testserver")
    waiting = shop.client.get(path + "?lang=en", follow_redirects=False)
    assert waiting.status_code == 202 and "Preparing your card" in waiting.text  # not at Google yet
    drain()
    r = shop.client.get(path, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == card["google_save_url"]


def test_reads_never_sign_and_writes_sign_once(gshop, google) -> None:
    shop = gshop.shop
    with db.transaction() as session:
        remove_issuer(session, shop.merchant_id)
    card = shop.card(shop.program("bonus"))  # enrolled before Google was set up
    assert card["google_save_url"] == _redirect_url(card)
    with db.transaction() as session:
        import_key(session, gshop.key_file, google.issuer_id, shop.merchant_id)
    read = shop.get(f"/api/v1/cards/{card['code']}").json()
    assert read["google_save_url"] == _redirect_url(card)  # a read transaction signs nothing
    with db.read() as session:
        assert session.get(GoogleObject, _card_id(shop, card["code"])) is None
    bought = shop.buy(card["code"], 10000)
    assert bought["card"]["google_save_url"].startswith(SAVE)
    assert (
        shop.get(f"/api/v1/cards/{card['code']}").json()["google_save_url"]
        == bought["card"]["google_save_url"]
    )


def test_a_too_long_jwt_inserts_the_object_first_and_links_by_id(
    gshop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOYALWALLET_GOOGLE_MAX_JWT", "700")
    shop = gshop.shop
    card = shop.card(shop.program("bonus"), name="Константин Константинович Константинопольский")
    assert card["google_save_url"] == _redirect_url(card)  # nothing short enough to sign yet
    drain()  # the worker inserts the object, then signs a link that names only its id
    oid = next(iter(gshop.fake.objects))
    assert gshop.fake.objects[oid]["accountId"] == card["code"]
    view = shop.get(f"/api/v1/cards/{card['code']}").json()
    claims = _claims(view["google_save_url"], gshop.public_key)
    assert claims["payload"]["loyaltyObjects"] == [{"id": oid, "classId": gshop.fake.objects[oid]["classId"]}]
    r = shop.client.get(_redirect_url(card).removeprefix("http://testserver"), follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == view["google_save_url"]


def _card_id(shop: Shop, code: str) -> int:
    from loyalwallet.cards.models import Card

    with db.read() as session:
        return int(
            session.scalar(select(Card.id).where(Card.merchant_id == shop.merchant_id, Card.code == code))
            or 0
        )


def _card_changed_rows(shop: Shop, code: str) -> int:
    card_id = _card_id(shop, code)
    with db.read() as session:
        rows = session.scalars(
            select(OutboxMessage.payload).where(OutboxMessage.topic == "card.changed")
        ).all()
    return sum(1 for payload in rows if payload.get("card_id") == card_id)


def test_a_google_problem_never_fails_the_purchase(gshop, monkeypatch: pytest.MonkeyPatch) -> None:
    shop = gshop.shop
    card = shop.card(shop.program("bonus"))
    with db.transaction() as session:
        session.execute(delete(GoogleObject).where(GoogleObject.card_id == _card_id(shop, card["code"])))
    reset_cache()

    def broken(*args: object, **kw: object) -> dict:
        raise RuntimeError("a bug in the object builder")

    working = links.build_object
    monkeypatch.setattr(links, "build_object", broken)
    changed_before = _card_changed_rows(shop, card["code"])
    bought = shop.buy(card["code"], 10000)  # the purchase goes through
    assert bought["card"]["google_save_url"] == _redirect_url(card)
    # ...with its outbox rows: the failed savepoint drops none of them.
    assert _card_changed_rows(shop, card["code"]) == changed_before + 1
    monkeypatch.setattr(links, "build_object", working)
    again = shop.buy(card["code"], 10000)
    assert again["card"]["google_save_url"].startswith(SAVE)
