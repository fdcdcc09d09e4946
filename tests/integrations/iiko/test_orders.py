"""Our programme with iiko as the till: closed iiko orders become purchases in our ledger."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from fakes.iiko import FakeIiko, order_event
from integrations.iiko.conftest import LOGIN
from loyalwallet import db
from loyalwallet.checkout.models import Purchase, PurchaseLine
from loyalwallet.errors import DomainError
from loyalwallet.integrations.iiko import service
from loyalwallet.integrations.iiko.models import IikoConnection
from loyalwallet.outbox import worker
from support import Shop, random_phone


def _connect(shop: Shop, program_id: int) -> str:
    with db.transaction() as session:
        row = service.connect(
            session, shop.merchant_id, LOGIN, card_first=1, card_last=100, ledger_program_id=program_id
        )
        return row.webhook_token


def _post(shop: Shop, token: str, events: list[dict[str, Any]]) -> Any:
    r = shop.client.post(
        f"/integrations/iiko/{shop.merchant_id}/webhook",
        json=events,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200, r.text
    worker.drain()
    return r.json()


def _purchases(card_id_code: str, merchant_id: int) -> list[Purchase]:
    with db.read() as session:
        return list(
            session.scalars(
                select(Purchase).where(
                    Purchase.merchant_id == merchant_id, Purchase.external_id.like("iiko:%")
                )
            )
        )


def test_a_closed_order_is_booked_once_and_a_deleted_one_reversed(shop: Shop, iiko: FakeIiko) -> None:
    program = shop.program("bonus")
    phone = random_phone()
    card = shop.card(program, phone)
    token = _connect(shop, program)
    event = order_event(iiko, phone=phone, total=350, items=[("Капучино", 200), ("Круассан", 150)])
    assert _post(shop, token, [event]) == {"synced": 0, "orders": 1}
    after = shop.get(f"/api/v1/cards/{card['code']}").json()
    assert after["balance"] > 0  # accrued after the fact, by our programme's rules
    booked = _purchases(card["code"], shop.merchant_id)
    assert len(booked) == 1 and booked[0].amount == 35000
    with db.read() as session:
        lines = session.scalars(
            select(PurchaseLine.name).where(PurchaseLine.purchase_id == booked[0].id)
        ).all()
    assert sorted(lines) == ["Капучино", "Круассан"]  # lines for upsell analytics

    _post(shop, token, [event])  # iiko sends the same event again
    assert len(_purchases(card["code"], shop.merchant_id)) == 1
    assert shop.get(f"/api/v1/cards/{card['code']}").json()["balance"] == after["balance"]

    deleted = order_event(iiko, phone=phone, status="Deleted", total=350, order_id=event["eventInfo"]["id"])
    _post(shop, token, [deleted])
    assert shop.get(f"/api/v1/cards/{card['code']}").json()["balance"] == 0  # reversed
    _post(shop, token, [deleted])
    assert shop.get(f"/api/v1/cards/{card['code']}").json()["balance"] == 0


def test_orders_of_unknown_phones_or_other_organisations_are_ignored(shop: Shop, iiko: FakeIiko) -> None:
    program = shop.program("bonus")
    token = _connect(shop, program)
    stranger = order_event(iiko, phone=random_phone())
    other = order_event(iiko, phone=random_phone())
    other["organizationId"] = "0f000000-0000-0000-0000-000000000002"
    open_order = order_event(iiko, phone=random_phone(), status="Bill")
    assert _post(shop, token, [stranger, other, open_order]) == {"synced": 0, "orders": 0}


def test_a_body_that_is_not_a_list_is_a_clear_error(shop: Shop, iiko: FakeIiko) -> None:
    token = _connect(shop, shop.program("bonus"))
    r = shop.client.post(
        f"/integrations/iiko/{shop.merchant_id}/webhook",
        json={"eventType": "x"},
        headers={"Authorization": token},
    )
    assert r.status_code == 422 and r.json()["code"] == "validation_error"
    with db.read() as session:
        assert (
            session.scalar(
                select(func.count())
                .select_from(IikoConnection)
                .where(IikoConnection.merchant_id == shop.merchant_id)
            )
            == 1
        )


def test_an_iiko_programme_cannot_be_the_ledger_programme(shop: Shop, iiko: FakeIiko) -> None:
    program = shop.post("/api/v1/programs", {"kind": "iiko", "name": "iiko", "rules": {}}).json()["id"]
    with pytest.raises(DomainError) as err, db.transaction() as session:
        service.connect(
            session, shop.merchant_id, LOGIN, card_first=1, card_last=2, ledger_program_id=program
        )
    assert err.value.code == "validation_error"
