"""iiko orders matched to our guest by the card scanned at the till as well as by phone:
for our programme with iiko as the till and for the iiko programme."""

from __future__ import annotations

from typing import Any

from fakes.iiko import FakeIiko, order_event
from integrations.iiko.conftest import LOGIN, IikoShop
from loyalwallet import db
from loyalwallet.integrations.iiko import service
from loyalwallet.outbox import worker
from support import Shop, random_phone


def _post(shop: Shop, token: str, events: list[dict[str, Any]]) -> Any:
    r = shop.client.post(
        f"/integrations/iiko/{shop.merchant_id}/webhook",
        json=events,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200, r.text
    worker.drain()
    return r.json()


def _token(merchant_id: int) -> str:
    with db.read() as session:
        conn = service.connection(session, merchant_id)
        assert conn is not None
        return conn.webhook_token


def test_our_programme_books_an_order_found_by_the_scanned_card(shop: Shop, iiko: FakeIiko) -> None:
    """The guest's iiko customer holds our card's code as its card (the barista scanned our
    pass in iikoFront); the order has that customer and no phone."""
    program = shop.program("bonus")
    card = shop.card(program, random_phone())
    with db.transaction() as session:
        service.connect(
            session, shop.merchant_id, LOGIN, card_first=1, card_last=100, ledger_program_id=program
        )
    holder = iiko.add_customer(random_phone(), card=card["code"])  # another phone in iiko
    event = order_event(iiko, customer=holder, total=500)
    assert _post(shop, _token(shop.merchant_id), [event]) == {"synced": 0, "orders": 1}
    assert shop.get(f"/api/v1/cards/{card['code']}").json()["balance"] > 0
    # An iiko customer whose cards are none of ours: nothing booked, nothing fails.
    stranger = iiko.add_customer(random_phone(), card="99887766")
    _post(shop, _token(shop.merchant_id), [order_event(iiko, customer=stranger, total=900)])
    assert shop.get("/api/v1/purchases").json()["items"].__len__() == 1


def test_the_iiko_programme_follows_an_order_found_by_phone(ishop: IikoShop) -> None:
    phone = random_phone()
    r = ishop.shop.post("/api/v1/cards", {"program_id": ishop.program_id, "phone": phone})
    card = r.json()
    guest = ishop.fake.by_phone(phone)
    assert guest is not None
    worker.drain()
    ishop.fake.order_closed(guest, 120)
    answer = _post(ishop.shop, _token(ishop.merchant_id), [order_event(ishop.fake, phone=phone)])
    assert answer == {"synced": 1, "orders": 0}
    worker.drain()
    assert ishop.shop.get(f"/api/v1/cards/{card['code']}").json()["balance"] == 120


def test_the_iiko_programme_follows_an_order_found_by_its_card(ishop: IikoShop) -> None:
    """iiko names a customer we hold no link for (iiko merged two customers, say), whose
    card is our iiko card's number: that card follows iiko."""
    phone = random_phone()
    card = ishop.shop.post("/api/v1/cards", {"program_id": ishop.program_id, "phone": phone}).json()
    worker.drain()
    merged = ishop.fake.add_customer(random_phone(), card=card["code"], balance=75)
    original = ishop.fake.by_phone(phone)
    assert original is not None
    original.cards.clear()  # the card moved to the merged customer in iiko
    _post(ishop.shop, _token(ishop.merchant_id), [order_event(ishop.fake, customer=merged)])
    assert ishop.shop.get(f"/api/v1/cards/{card['code']}").json()["balance"] == 75
