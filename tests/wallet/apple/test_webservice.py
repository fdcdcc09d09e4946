"""The PassKit web service walked by a simulated device, and what it refuses."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import func, select

from fakes.apns import FakeApns
from fakes.wallet_device import Device, open_pkpass
from loyalwallet import db
from loyalwallet.cards.models import Card
from loyalwallet.outbox import worker
from loyalwallet.wallet.apple import service
from loyalwallet.wallet.apple.api import DEVICE_LOGS
from loyalwallet.wallet.apple.models import AppleCertificate, AppleRegistration
from support import Shop


def _card_row(code: str) -> Card:
    with db.read() as session:
        card = session.scalar(select(Card).where(Card.code == code))
        assert card is not None
        session.expunge(card)
        return card


def _download(shop: Shop, card: dict[str, Any], dev_root: str) -> dict[str, Any]:
    r = shop.client.get(card["apple_pass_url"])
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/vnd.apple.pkpass"
    return open_pkpass(r.content, dev_root).pass_json


def _time_passes(code: str, seconds: int = 10) -> None:
    with db.transaction() as session:
        card = session.scalar(select(Card).where(Card.code == code))
        assert card is not None
        card.pass_updated_at -= dt.timedelta(seconds=seconds)


def test_a_device_follows_a_card_through_the_whole_protocol(
    shop: Shop, apple_cert: AppleCertificate, dev_root: str, apns: FakeApns
) -> None:
    program = shop.program("bonus")
    card = shop.card(program, name="Анна")
    other = shop.card(program)
    shop.buy(card["code"], 100_000)
    worker.drain()

    pj = _download(shop, card, dev_root)
    ptid, serial, token = pj["passTypeIdentifier"], pj["serialNumber"], pj["authenticationToken"]
    assert pj["webServiceURL"] == "http://testserver/wallet/apple"
    assert ptid == apple_cert.pass_type_id and len(token) >= 16
    other_pj = _download(shop, other, dev_root)

    device = Device(shop.client)
    assert device.register(ptid, serial, token).status_code == 201
    assert device.register(ptid, serial, token).status_code == 200  # already registered
    assert device.register(ptid, other_pj["serialNumber"], other_pj["authenticationToken"]).status_code == 201

    first = device.changed(ptid, tag=None)  # no tag yet: every registered pass
    assert first.status_code == 200
    assert sorted(first.json()["serialNumbers"]) == sorted([serial, other_pj["serialNumber"]])
    assert device.changed(ptid).status_code == 204  # nothing changed since

    # A purchase: the outbox wakes the device through APNs...
    shop.buy(card["code"], 50_000)
    worker.drain()
    assert apns.tokens() == [device.push_token]
    assert apns.pushes[0]["topic"] == ptid
    # ...which asks what changed: only that card.
    changed = device.changed(ptid)
    assert changed.status_code == 200 and changed.json()["serialNumbers"] == [serial]
    assert device.changed(ptid).status_code == 204

    # It downloads the pass: the new balance, with the alert text.
    _time_passes(card["code"])
    r = device.fetch(ptid, serial, token)
    assert r.status_code == 200 and "last-modified" in r.headers
    fresh = open_pkpass(r.content, dev_root).pass_json
    balance = fresh["storeCard"]["headerFields"][0]
    assert balance["key"] == "balance" and balance["value"] == _card_row(card["code"]).balance
    assert "%@" in balance["changeMessage"]
    assert fresh["serialNumber"] == serial and fresh["authenticationToken"] == token
    # Asked again with If-Modified-Since: not modified.
    assert device.fetch(ptid, serial, token).status_code == 304

    assert device.unregister(ptid, serial, token).status_code == 200
    after = device.changed(ptid, tag=None)
    assert after.json()["serialNumbers"] == [other_pj["serialNumber"]]
    assert device.log(["Failed to download pass", "x" * 5000]).status_code == 200
    assert DEVICE_LOGS[-1] == "x" * 1000


def test_a_change_within_the_same_second_is_never_hidden_by_304(shop: Shop, dev_root: str) -> None:
    program = shop.program("stamp")
    card = shop.card(program)
    pj = _download(shop, card, dev_root)
    device = Device(shop.client)
    r = device.fetch(pj["passTypeIdentifier"], pj["serialNumber"], pj["authenticationToken"])
    assert r.status_code == 200
    shop.buy(card["code"], 10_000)  # most likely within the same second
    r = device.fetch(pj["passTypeIdentifier"], pj["serialNumber"], pj["authenticationToken"])
    assert r.status_code == 200
    store = open_pkpass(r.content).pass_json["storeCard"]
    assert store["headerFields"][0]["value"] == "1/5"  # stamps_required 6: five to collect
    terms = next(f for f in store["backFields"] if f["key"] == "back_stamp_terms")
    assert terms["value"].startswith(("Paid visits: 5, then on visit 6", "Оплаченных визитов: 5, на 6-й"))


def test_last_modified_promises_a_second_only_when_it_is_over() -> None:
    changed = dt.datetime(2026, 5, 1, 12, 0, 0, 400_000, tzinfo=dt.UTC)
    soon = changed + dt.timedelta(milliseconds=300)
    later = changed + dt.timedelta(seconds=5)
    assert service.last_modified(changed, soon) == dt.datetime(2026, 5, 1, 11, 59, 59, tzinfo=dt.UTC)
    assert service.last_modified(changed, later) == dt.datetime(2026, 5, 1, 12, 0, 0, tzinfo=dt.UTC)
    stamp = service.http_date(service.last_modified(changed, later))
    assert service.not_modified(changed, stamp)
    assert not service.not_modified(changed + dt.timedelta(seconds=1), stamp)
    assert not service.not_modified(changed, "not a date")


def test_wrong_tokens_unknown_passes_and_malformed_input(shop: Shop, apple_cert: AppleCertificate) -> None:
    program = shop.program("bonus")
    card = _card_row(shop.card(program)["code"])
    ptid = apple_cert.pass_type_id
    device = Device(shop.client)
    # Wrong, missing or foreign-scheme credentials: 401, nothing written.
    assert device.register(ptid, card.serial, "x" * 32).status_code == 401
    r = shop.client.post(
        f"/wallet/apple/v1/devices/{device.device_id}/registrations/{ptid}/{card.serial}",
        json={"pushToken": device.push_token},
        headers={"Authorization": f"Bearer {card.auth_token}"},
    )
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
    assert device.fetch(ptid, card.serial, "nope" * 8).status_code == 401
    assert device.unregister(ptid, card.serial, "nope" * 8).status_code == 401
    # Unknown serial: 401 as well (no way to probe which serials exist).
    assert device.register(ptid, "no-such-serial", card.auth_token).status_code == 401
    assert device.fetch(ptid, "no-such-serial", card.auth_token).status_code == 401
    # Unknown pass type: 404.
    assert device.register("pass.com.someone.else", card.serial, card.auth_token).status_code == 404
    assert device.changed("pass.com.someone.else", tag=None).status_code == 404
    assert device.fetch("pass.com.someone.else", card.serial, card.auth_token).status_code == 404
    # Malformed push tokens, device ids and bodies: 400/422.
    assert device.register(ptid, card.serial, card.auth_token, push_token="not-hex!").status_code == 400
    assert device.register(ptid, card.serial, card.auth_token, push_token="ab" * 501).status_code == 422
    bad_device = Device(shop.client, device_id="../../etc")
    assert bad_device.register(ptid, card.serial, card.auth_token).status_code in (400, 404)
    r = shop.client.post(
        f"/wallet/apple/v1/devices/{device.device_id}/registrations/{ptid}/{card.serial}",
        content=b"{not json",
        headers={**device.auth(card.auth_token), "content-type": "application/json"},
    )
    assert r.status_code == 400
    assert device.log(["x"] * 101).status_code == 422
    # A tag that is not ours: every registered serial (here none).
    assert device.changed(ptid, tag="garbage").status_code == 204
    with db.read() as session:
        assert session.scalar(select(func.count()).where(AppleRegistration.serial == card.serial)) == 0
    # Apple says token length varies: a 400- or 1,000-character token is taken.
    for n in (200, 500):
        r = device.register(ptid, card.serial, card.auth_token, push_token="ab" * n)
        assert r.status_code in (200, 201), r.text


def test_a_device_registering_over_and_over(
    shop: Shop, apple_cert: AppleCertificate, monkeypatch: pytest.MonkeyPatch
) -> None:
    ptid = apple_cert.pass_type_id
    program = shop.program("bonus")
    cards = [_card_row(shop.card(program)["code"]) for _ in range(4)]
    device = Device(shop.client)
    # The same registration a thousand times is one row (200 after the first).
    codes = {device.register(ptid, cards[0].serial, cards[0].auth_token).status_code for _ in range(150)}
    assert codes == {201, 200}
    # A new push token replaces the old one.
    assert (
        device.register(ptid, cards[0].serial, cards[0].auth_token, push_token="ab" * 32).status_code == 200
    )
    # Too many passes on one device: refused.
    monkeypatch.setenv("LOYALWALLET_APPLE_MAX_PASSES_PER_DEVICE", "3")
    assert [device.register(ptid, c.serial, c.auth_token).status_code for c in cards[1:]] == [201, 201, 429]
    # Too many devices on one pass: the least recently seen gives way.
    monkeypatch.setenv("LOYALWALLET_APPLE_MAX_DEVICES_PER_PASS", "2")
    phones = [Device(shop.client) for _ in range(3)]
    for phone in phones:
        assert phone.register(ptid, cards[3].serial, cards[3].auth_token).status_code == 201
    with db.read() as session:
        rows = session.scalars(
            select(AppleRegistration).where(AppleRegistration.serial.in_([c.serial for c in cards]))
        ).all()
    mine = [r for r in rows if r.device_id == device.device_id]
    assert len(mine) == 3 and {r.push_token for r in mine if r.serial == cards[0].serial} == {"ab" * 32}
    assert sorted(r.device_id for r in rows if r.serial == cards[3].serial) == sorted(
        p.device_id for p in phones[1:]
    )


def test_the_public_pass_link(shop: Shop, dev_root: str) -> None:
    program = shop.program("discount")
    card = shop.card(program, name="Борис")
    pj = _download(shop, card, dev_root)
    assert pj["storeCard"]["headerFields"][0]["value"] == "5%"
    r = shop.client.get(card["apple_pass_url"])
    etag = r.headers["etag"]
    assert shop.client.get(card["apple_pass_url"], headers={"If-None-Match": etag}).status_code == 304
    assert shop.client.get("/c/not-a-real-token-at-all/pass.pkpass").status_code == 404
    assert shop.client.get("/c/x/pass.pkpass").status_code == 404


def test_an_anonymous_invitation_card_has_a_pass_without_a_name(shop: Shop, dev_root: str) -> None:
    from loyalwallet.cards.service import new_card
    from loyalwallet.programs.models import Program

    program_id = shop.program("stamp")
    with db.transaction() as session:
        program = session.get(Program, program_id)
        card = new_card(session, program, None, channel="counter")
        url = f"/c/{card.public_token}/pass.pkpass"
    r = shop.client.get(url)
    pj = open_pkpass(r.content, dev_root).pass_json
    keys = [f["key"] for part in pj["storeCard"].values() for f in part]
    assert "holder" not in keys and pj["storeCard"]["headerFields"][0]["value"] == "0/5"


def test_web_service_url_needs_https_for_a_real_certificate(monkeypatch: pytest.MonkeyPatch) -> None:
    real = AppleCertificate(kind="production")
    dev = AppleCertificate(kind="development")
    assert service.web_service_url(real) is None  # the test server is http://testserver
    assert service.web_service_url(dev) == "http://testserver/wallet/apple"
    monkeypatch.setenv("LOYALWALLET_APPLE_ALLOW_HTTP", "1")
    assert service.web_service_url(real) == "http://testserver/wallet/apple"
