"""A purchase (after a card's first) changes no indexed column of its card, so that
PostgreSQL can make the card UPDATE a HOT one: no entry in any of the card's indexes.
Whoever indexes a column a purchase changes (visits, spend, updated_at...) breaks this."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from loyalwallet import db
from loyalwallet.cards.models import Card
from support import Shop

BONUS = {"tiers": [{"name": "Base", "min_spend": 0, "cashback_pct": 5}]}


def _indexed() -> set[str]:
    table: Any = Card.__table__
    names = {c.name for c in table.primary_key.columns}
    for index in table.indexes:
        names |= {c.name for c in index.columns}
        names |= {str(c) for c in index.dialect_options["postgresql"]["include"] or []}
    for constraint in table.constraints:
        names |= {c.name for c in getattr(constraint, "columns", [])}
    return names


def _row(code: str) -> dict[str, Any]:
    with db.read() as session:
        card = session.scalars(select(Card).where(Card.code == code)).one()
        return {c: getattr(card, c) for c in _indexed()}


def test_a_purchase_changes_no_indexed_column_of_its_card(shop: Shop) -> None:
    indexed = _indexed()
    assert {"updated_at", "merchant_id", "first_purchase_at"} <= indexed  # the check sees them
    code = shop.card(shop.program("bonus", BONUS))["code"]
    shop.buy(code, 10_000)  # the first purchase sets first_purchase_at (indexed): not HOT
    before = _row(code)
    shop.buy(code, 25_000)
    assert _row(code) == before
