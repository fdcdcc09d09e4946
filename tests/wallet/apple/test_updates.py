"""passesUpdatedSince cannot miss a change, even when transactions commit out of order."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from fakes.wallet_device import Device
from loyalwallet import db
from loyalwallet.cards.models import Card
from loyalwallet.wallet.apple import updates
from loyalwallet.wallet.apple.models import AppleCertificate, AppleRegistration
from support import Shop


def _card(shop: Shop, program: int) -> Card:
    code = shop.card(program)["code"]
    with db.read() as session:
        card = session.scalar(select(Card).where(Card.code == code))
        assert card is not None
        session.expunge(card)
        return card


def _mark_changed(session, card: Card) -> None:  # type: ignore[no-untyped-def]
    """What the card.changed listener does for the card's registrations."""
    seq = updates.stamp(session)
    session.execute(
        update(AppleRegistration).where(AppleRegistration.card_id == card.id).values(change_seq=seq)
    )


def test_tags_round_trip(is_pg: bool) -> None:
    if is_pg:
        tag = updates.Tag(1000, (990, 997), sqlite=False)
        assert tag.encode() == "p1000.10.3"
        assert updates.parse("p1000.10.3") == tag
        assert updates.parse("s5") is None
    else:
        assert updates.Tag(42).encode() == "s42" and updates.parse("s42") == updates.Tag(42)
        assert updates.parse("p1000.3") is None
    for junk in (None, "", "x", "s", "p", "s-", "pabc", "p10.-3", "p10.0", "s" + "9" * 3000):
        assert updates.parse(junk) is None


def test_stamps_grow_in_commit_order(is_pg: bool) -> None:
    with db.transaction() as session:
        first = updates.stamp(session)
    with db.transaction() as session:
        second = updates.stamp(session)
    assert second > first
    with db.read() as session:
        tag = updates.current(session)
    if not is_pg:
        assert tag == updates.Tag(second)
    else:
        assert tag.floor > second


def test_out_of_order_commits_are_not_missed(shop: Shop, apple_cert: AppleCertificate, is_pg: bool) -> None:
    """Change A starts first but commits after change B; a device asking in between
    must still hear about A on its next question."""
    if not is_pg:
        pytest.skip("SQLite serialises writers (BEGIN IMMEDIATE): commits cannot interleave")
    ptid = apple_cert.pass_type_id
    program = shop.program("bonus")
    a, b = _card(shop, program), _card(shop, program)
    device = Device(shop.client)
    for card in (a, b):
        assert device.register(ptid, card.serial, card.auth_token).status_code == 201
    assert device.changed(ptid, tag=None).status_code == 200

    with db.transaction() as slow:  # A: stamped first, committed last
        _mark_changed(slow, a)
        with db.transaction() as fast:  # B: stamped later, committed first
            _mark_changed(fast, b)
        between = device.changed(ptid)
        assert between.status_code == 200 and between.json()["serialNumbers"] == [b.serial]
    after = device.changed(ptid)
    assert after.status_code == 200 and after.json()["serialNumbers"] == [a.serial]
    assert device.changed(ptid).status_code == 204


def test_only_changed_serials_are_reported(shop: Shop, apple_cert: AppleCertificate) -> None:
    ptid = apple_cert.pass_type_id
    program = shop.program("stamp")
    cards = [_card(shop, program) for _ in range(3)]
    device = Device(shop.client)
    for card in cards:
        device.register(ptid, card.serial, card.auth_token)
    assert len(device.changed(ptid, tag=None).json()["serialNumbers"]) == 3
    with db.transaction() as session:
        _mark_changed(session, cards[1])
    assert device.changed(ptid).json()["serialNumbers"] == [cards[1].serial]
    assert device.changed(ptid).status_code == 204
