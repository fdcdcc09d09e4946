"""Fixtures of the r_keeper tests: a shop whose bonus programme r_keeper serves, and a
fake r_keeper restaurant whose FarCards calls it over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from fakes.rkeeper import FakeRkeeper
from loyalwallet import db
from loyalwallet.integrations.rkeeper import service
from support import Shop

RULES = {
    "tiers": [
        {"name": "Base", "min_spend": 0, "cashback_pct": 10},
        {"name": "Gold", "min_spend": 500_000, "cashback_pct": 15},
    ],
    "max_redeem_pct": 50,
}


@dataclass
class RkShop:
    shop: Shop
    program_id: int
    till: FakeRkeeper
    secret: str

    @property
    def merchant_id(self) -> int:
        return self.shop.merchant_id


@pytest.fixture
def rk(shop: Shop) -> Iterator[RkShop]:
    program = shop.program("bonus", RULES, name="Бонусы")
    with db.transaction() as session:
        _row, secret = service.connect(
            session,
            shop.merchant_id,
            program,
            tiers={"Base": {"discount": 3, "bonus": 1}, "Gold": {"discount": 7, "bonus": 2}},
        )
    assert secret is not None
    till = FakeRkeeper(shop.client, service.base_path(shop.merchant_id, secret))
    yield RkShop(shop, program, till, secret)
    assert till.invalid == [], "answers that do not match FarCards' description"
