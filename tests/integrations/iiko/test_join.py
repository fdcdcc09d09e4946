"""Joining an iiko programme: the guest and card made (or found) in iiko first."""

from __future__ import annotations

from sqlalchemy import func, select

from integrations.iiko.conftest import FIRST, LAST, IikoShop
from loyalwallet import db
from loyalwallet.cards.models import Card
from loyalwallet.customers.models import Customer
from loyalwallet.integrations.iiko.models import IikoConnection, IikoGuest
from support import random_phone


def _join(ishop: IikoShop, phone: str, **extra: object) -> object:
    return ishop.shop.post("/api/v1/cards", {"program_id": ishop.program_id, "phone": phone, **extra})


def _count_cards(merchant_id: int) -> int:
    with db.read() as session:
        return (
            session.scalar(select(func.count()).select_from(Card).where(Card.merchant_id == merchant_id)) or 0
        )


def test_join_creates_the_guest_and_a_card_from_the_range_in_iiko(ishop: IikoShop) -> None:
    phone = random_phone()
    r = _join(ishop, phone, name="Анна", birthday="1990-05-17")
    assert r.status_code == 201, r.text  # type: ignore[attr-defined]
    card = r.json()  # type: ignore[attr-defined]
    assert card["code"] == str(FIRST)  # the barcode is the iiko card number
    guest = ishop.fake.by_phone(phone)
    assert guest is not None and guest.name == "Анна" and guest.birthday == "1990-05-17 00:00:00.000"
    assert guest.consent == 1
    assert [c["number"] for c in guest.cards] == [str(FIRST)]
    assert ishop.fake.program_id in guest.programs
    assert card["tier"] == "Base"  # iiko's default category, mapped
    with db.read() as session:
        link = session.scalar(
            select(IikoGuest).where(
                IikoGuest.card_id
                == select(Card.id)
                .where(Card.code == card["code"], Card.merchant_id == ishop.merchant_id)
                .scalar_subquery()
            )
        )
        assert link is not None and link.customer_id == guest.id
    # The same phone again: the same card, nothing new in iiko.
    again = _join(ishop, phone)
    assert again.json()["code"] == card["code"] and again.json()["created"] is False  # type: ignore[attr-defined]
    assert len(guest.cards) == 1


def test_a_phone_iiko_already_knows_keeps_its_customer_and_card(ishop: IikoShop) -> None:
    phone = random_phone()
    known = ishop.fake.add_customer(phone, card="123456", balance=240)
    r = _join(ishop, phone)
    assert r.status_code == 201, r.text  # type: ignore[attr-defined]
    assert r.json()["code"] == "123456" and r.json()["balance"] == 240  # type: ignore[attr-defined]
    assert len(ishop.fake.customers) == 1 and len(known.cards) == 1
    assert "/api/1/loyalty/iiko/customer/card/add" not in ishop.fake.paths()


def test_a_card_number_taken_in_iiko_is_skipped(ishop: IikoShop) -> None:
    ishop.fake.add_customer(random_phone(), card=str(FIRST))  # given out by hand at the till
    r = _join(ishop, random_phone())
    assert r.status_code == 201 and r.json()["code"] == str(FIRST + 1)  # type: ignore[attr-defined]


def test_a_used_up_range_is_a_clear_error_and_writes_nothing(ishop: IikoShop) -> None:
    with db.transaction() as session:
        conn = session.scalar(select(IikoConnection).where(IikoConnection.merchant_id == ishop.merchant_id))
        assert conn is not None
        conn.card_next = LAST + 1
    before = _count_cards(ishop.merchant_id)
    r = _join(ishop, random_phone())
    assert r.status_code == 409 and r.json()["code"] == "iiko_card_range_exhausted"  # type: ignore[attr-defined]
    assert "ask the iiko dealer" in r.json()["detail"]  # type: ignore[attr-defined]
    assert _count_cards(ishop.merchant_id) == before


def test_a_phone_iiko_rejects_is_a_clear_error_and_writes_nothing(ishop: IikoShop) -> None:
    phone = random_phone()
    ishop.fake.rejected_phones.add(phone)
    before = _count_cards(ishop.merchant_id)
    r = _join(ishop, phone)
    assert r.status_code == 422 and r.json()["code"] == "iiko_phone_rejected"  # type: ignore[attr-defined]
    assert _count_cards(ishop.merchant_id) == before
    with db.read() as session:
        assert (
            session.scalar(
                select(func.count()).select_from(Customer).where(Customer.merchant_id == ishop.merchant_id)
            )
            == 0
        )


def test_iiko_down_at_join_writes_nothing_and_the_next_try_reuses_the_iiko_guest(ishop: IikoShop) -> None:
    phone = random_phone()
    ishop.fake.fail("/api/1/loyalty/iiko/customer/program/add", 500)
    r = _join(ishop, phone)
    assert r.status_code == 502 and r.json()["code"] == "iiko_unavailable"  # type: ignore[attr-defined]
    assert _count_cards(ishop.merchant_id) == 0
    # iiko kept the customer and the card it had made; the retry finds and uses them.
    r = _join(ishop, phone)
    assert r.status_code == 201, r.text  # type: ignore[attr-defined]
    guest = ishop.fake.by_phone(phone)
    assert guest is not None and [c["number"] for c in guest.cards] == [r.json()["code"]]  # type: ignore[attr-defined]
    assert len(ishop.fake.customers) == 1


def test_the_till_of_an_iiko_card_is_iikofront(ishop: IikoShop) -> None:
    card = _join(ishop, random_phone()).json()  # type: ignore[attr-defined]
    r = ishop.shop.post(
        "/api/v1/purchases", {"card": card["code"], "amount": 35000}, headers={"Idempotency-Key": "k1"}
    )
    assert r.status_code == 409 and "iikoFront" in r.json()["detail"]
    q = ishop.shop.post("/api/v1/purchases/quote", {"card": card["code"], "amount": 35000})
    assert q.status_code == 409


def test_join_without_a_connection_says_so(shop: object, iiko: object) -> None:
    from support import Shop

    assert isinstance(shop, Shop)
    program = shop.post("/api/v1/programs", {"kind": "iiko", "name": "iiko", "rules": {}}).json()
    r = shop.post("/api/v1/cards", {"program_id": program["id"], "phone": random_phone()})
    assert r.status_code == 409 and r.json()["code"] == "iiko_not_connected"
