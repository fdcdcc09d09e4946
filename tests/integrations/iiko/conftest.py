"""Fixtures of the iiko tests: the fake iikoCloud, a shop connected to it with an iiko
programme."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import update

from fakes.iiko import FakeIiko
from loyalwallet import db
from loyalwallet.integrations.iiko import client, service
from loyalwallet.outbox.models import OutboxMessage
from support import Shop

LOGIN = "c0ffee-api-login-7f3a"
FIRST, LAST = 7700000001, 7700000099


@pytest.fixture
def iiko(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeIiko]:
    fake = FakeIiko().start()
    fake.add_login(LOGIN)
    monkeypatch.setenv("LOYALWALLET_IIKO_URL", fake.url)
    monkeypatch.setenv("LOYALWALLET_IIKO_RATE", "1000")
    monkeypatch.setenv("LOYALWALLET_IIKO_TIMEOUT", "2")
    client.clear_tokens()
    yield fake
    assert fake.invalid == [], "requests that do not match iiko's published description"
    fake.stop()
    client.clear_tokens()


@dataclass
class IikoShop:
    shop: Shop
    fake: FakeIiko
    program_id: int

    @property
    def merchant_id(self) -> int:
        return self.shop.merchant_id


@pytest.fixture
def ishop(shop: Shop, iiko: FakeIiko) -> Iterator[IikoShop]:
    """A shop connected to the fake iiko (Золото → Gold) with a programme of kind iiko."""
    with db.transaction() as session:
        service.connect(
            session,
            shop.merchant_id,
            LOGIN,
            card_first=FIRST,
            card_last=LAST,
            tiers={"Золото": "Gold", "Стандарт": "Base"},
        )
    r = shop.call(
        "POST",
        "/api/v1/programs",
        json={
            "kind": "iiko",
            "name": "Бонусы iiko",
            "rules": {"tiers": [{"name": "Base"}, {"name": "Gold"}]},
        },
    )
    assert r.status_code == 201, r.text
    yield IikoShop(shop, iiko, r.json()["id"])
    with db.transaction() as session:
        service.disconnect(session, shop.merchant_id)
        # Nothing of this shop is left for other tests' workers to deliver.
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.merchant_id == shop.merchant_id, OutboxMessage.status == "pending")
            .values(status="done")
        )
