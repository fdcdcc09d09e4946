"""The campaign message contract: topic google.message -> addMessage on the card's object."""

from __future__ import annotations

import time

from sqlalchemy import select

from loyalwallet import db
from loyalwallet.cards.models import Card
from loyalwallet.outbox.service import enqueue
from support import Shop
from wallet.google.helpers import deliveries, drain


def _card_id(shop: Shop, code: str) -> int:
    with db.read() as session:
        return int(
            session.scalar(select(Card.id).where(Card.merchant_id == shop.merchant_id, Card.code == code))
        )


def _send(
    shop: Shop, card_id: int, message_id: str, header: str = "Hello", body: str = "Coffee is on us"
) -> None:
    with db.transaction() as session:
        enqueue(
            session,
            shop.merchant_id,
            "google.message",
            {"card_id": card_id, "header": header, "body": body, "message_id": message_id},
        )


def test_messages_notify_three_times_a_day_then_go_silently(gshop) -> None:
    shop, fake = gshop.shop, gshop.fake
    card = shop.card(shop.program("stamp"))
    drain()
    card_id = _card_id(shop, card["code"])
    for n in range(4):
        _send(shop, card_id, f"campaign-{n}", header=f"News {n}")
    _send(shop, card_id, "campaign-0")  # the outbox may deliver twice: added once
    drain()
    (obj,) = fake.objects.values()
    assert [(m["id"], m["messageType"]) for m in obj["messages"]] == [
        ("campaign-0", "TEXT_AND_NOTIFY"),
        ("campaign-1", "TEXT_AND_NOTIFY"),
        ("campaign-2", "TEXT_AND_NOTIFY"),
        ("campaign-3", "TEXT"),
    ]
    assert obj["messages"][3]["header"] == "News 3" and obj["messages"][3]["body"] == "Coffee is on us"
    assert all(d.status == "done" for d in deliveries(shop.merchant_id))


def test_googles_own_notification_quota_falls_back_to_text(gshop) -> None:
    shop, fake = gshop.shop, gshop.fake
    card = shop.card(shop.program("stamp"))
    drain()
    (oid,) = fake.objects
    fake.notified[oid] = [time.time()] * 3  # notified by an earlier install of ours
    _send(shop, _card_id(shop, card["code"]), "m1")
    drain()
    assert [m["messageType"] for m in fake.objects[oid]["messages"]] == ["TEXT"]


def test_at_most_ten_messages_are_kept(gshop) -> None:
    shop, fake = gshop.shop, gshop.fake
    card = shop.card(shop.program("stamp"))
    drain()
    card_id = _card_id(shop, card["code"])
    for n in range(12):
        _send(shop, card_id, f"m{n}")
    drain()
    (obj,) = fake.objects.values()
    assert [m["id"] for m in obj["messages"]] == [f"m{n}" for n in range(2, 12)]


def test_a_message_to_a_card_never_linked_to_google_is_skipped(gshop) -> None:
    shop, fake = gshop.shop, gshop.fake
    from loyalwallet.cards.service import new_card
    from loyalwallet.programs.models import Program

    program_id = shop.program("stamp")
    with db.transaction() as session:
        program = session.get(Program, program_id)
        card_id = new_card(session, program, None).id  # an invitation card nobody has seen
    _send(shop, card_id, "m1")
    drain()
    assert fake.objects == {} and all(d.status == "done" for d in deliveries(shop.merchant_id))


def test_a_message_for_another_merchants_card_is_refused(gshop, client) -> None:
    from support import new_shop

    other = new_shop(client, "Other café")
    card = other.card(other.program("stamp"))
    _send(gshop.shop, _card_id(other, card["code"]), "m1")
    drain()
    (dead,) = [d for d in deliveries(gshop.shop.merchant_id) if d.topic == "google.message"]
    assert dead.status == "dead" and "card not found" in (dead.last_error or "")


def test_a_message_to_an_object_deleted_at_google_inserts_it_again(gshop) -> None:
    shop, fake = gshop.shop, gshop.fake
    card = shop.card(shop.program("stamp"))
    drain()
    card_id = _card_id(shop, card["code"])
    _send(shop, card_id, "m1")
    drain()
    (oid,) = fake.objects
    del fake.objects[oid]
    _send(shop, card_id, "m2")
    drain()
    assert [m["id"] for m in fake.objects[oid]["messages"]] == ["m1", "m2"]
    assert fake.objects[oid]["accountId"] == card["code"]
    assert all(d.status == "done" for d in deliveries(shop.merchant_id))


def test_campaigns_at_once_never_notify_a_card_a_fourth_time(gshop) -> None:
    """Six campaign messages to one card at the same moment (as two campaigns' workers do):
    3 go with a notification, the rest silently, and Google is never asked for a 4th
    notification (on SQLite the count used to be read outside the write)."""
    import threading

    from loyalwallet.outbox.handlers import Retry
    from loyalwallet.wallet.google import sync

    shop, fake = gshop.shop, gshop.fake
    card = shop.card(shop.program("stamp"))
    drain()
    card_id = _card_id(shop, card["code"])
    fake.fail(None, times=100, method="POST", path="addMessage", delay=0.3)  # slow Google widens the race
    start = threading.Barrier(6)
    results: list[str] = []

    def send(n: int) -> None:
        start.wait()
        while True:
            try:
                results.append(sync.send_message(card_id, shop.merchant_id, f"News {n}", "Coffee", f"c-{n}"))
                return
            except Retry:  # PostgreSQL: another send holds the card's row; the outbox retries
                time.sleep(0.05)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(results) == ["sent"] * 3 + ["sent_text"] * 3
    notifying = [
        c
        for c in fake.calls
        if c.path.endswith("addMessage") and c.body["message"]["messageType"] == "TEXT_AND_NOTIFY"
    ]
    assert len(notifying) == 3 and all(c.status == 200 for c in notifying)
    (obj,) = fake.objects.values()
    assert sorted(m["id"] for m in obj["messages"]) == [f"c-{n}" for n in range(6)]
    from loyalwallet.wallet.google.models import GoogleObject

    with db.read() as session:
        row = session.get(GoogleObject, card_id)
        assert row is not None and len(row.notified_at) == 3
        assert sorted(m["id"] for m in row.messages) == [f"c-{n}" for n in range(6)]
