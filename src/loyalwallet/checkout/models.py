"""Purchases with their lines, refunds and idempotency records.

A purchase stores every figure of its checkout and running totals of what refunds have
taken back, so each new partial refund is computed from cumulative totals and rounding
never lets the sum of refunds exceed the purchase.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, SmallInteger, String, text
from sqlalchemy.orm import Mapped, mapped_column

from loyalwallet.db import Base, BigID, IdPK, Timestamp


class Purchase(Base):
    __tablename__ = "purchases"
    __table_args__ = (
        Index("ix_purchases_card_created", "card_id", "created_at"),
        # Which merchants had a purchase since a time (analytics/snapshot.py): a purchase
        # leaves its card's indexed updated_at alone (a HOT card update) and is found here.
        Index("ix_purchases_created", "created_at", "merchant_id"),
        # (merchant_id, created_at) ranges: ix_purchases_analytics (analytics/models.py)
        # starts with those columns; a second index of them was one more entry per purchase.
        # Looked up by a given external id only: purchases without one (most of them) are
        # not in it.
        Index(
            "ix_purchases_merchant_external",
            "merchant_id",
            "external_id",
            postgresql_where=text("external_id IS NOT NULL"),
            sqlite_where=text("external_id IS NOT NULL"),
        ),
    )

    id: Mapped[IdPK]
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"))
    card_id: Mapped[int] = mapped_column(BigID, ForeignKey("cards.id"))
    program_id: Mapped[int] = mapped_column(BigID, ForeignKey("programs.id"))
    location_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("locations.id"))
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int | None] = mapped_column(BigID)
    external_id: Mapped[str | None] = mapped_column(String(128))
    amount: Mapped[int] = mapped_column(BigInteger)
    tier_discount: Mapped[int] = mapped_column(BigInteger, default=0)
    coupon_discount: Mapped[int] = mapped_column(BigInteger, default=0)
    discount: Mapped[int] = mapped_column(BigInteger, default=0)
    points_redeemed: Mapped[int] = mapped_column(BigInteger, default=0)
    redeem_value: Mapped[int] = mapped_column(BigInteger, default=0)
    to_pay: Mapped[int] = mapped_column(BigInteger)
    accrual_base: Mapped[int] = mapped_column(BigInteger, default=0)
    points_accrued: Mapped[int] = mapped_column(BigInteger, default=0)
    stamps_added: Mapped[int] = mapped_column(Integer, default=0)
    spend_added: Mapped[int] = mapped_column(BigInteger, default=0)
    coupon_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("coupons.id"))
    tier_before: Mapped[str | None] = mapped_column(String(100))
    tier_after: Mapped[str | None] = mapped_column(String(100))
    # Running totals of refunds.
    refunded_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded_money: Mapped[int] = mapped_column(BigInteger, default=0)
    points_reversed: Mapped[int] = mapped_column(BigInteger, default=0)
    points_returned: Mapped[int] = mapped_column(BigInteger, default=0)
    stamps_reversed: Mapped[int] = mapped_column(Integer, default=0)
    spend_reversed: Mapped[int] = mapped_column(BigInteger, default=0)
    # Stamp kinds 2..4 of a card with several kinds: {"2": [added, reversed], ...};
    # NULL for every other purchase.
    kind_stamps: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    status: Mapped[str] = mapped_column(String(24), default="completed")
    created_at: Mapped[Timestamp]


class PurchaseLine(Base):
    __tablename__ = "purchase_lines"

    id: Mapped[IdPK]
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"))
    purchase_id: Mapped[int] = mapped_column(BigID, ForeignKey("purchases.id"), index=True)
    position: Mapped[int] = mapped_column(SmallInteger)
    sku: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(200))
    category: Mapped[str | None] = mapped_column(String(64))
    qty: Mapped[int] = mapped_column(Integer)
    price: Mapped[int] = mapped_column(BigInteger)  # per unit, minor units
    refunded_qty: Mapped[int] = mapped_column(Integer, default=0)


class Refund(Base):
    __tablename__ = "refunds"

    id: Mapped[IdPK]
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"))
    purchase_id: Mapped[int] = mapped_column(BigID, ForeignKey("purchases.id"), index=True)
    card_id: Mapped[int] = mapped_column(BigID, ForeignKey("cards.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    money_returned: Mapped[int] = mapped_column(BigInteger, default=0)
    points_reversed: Mapped[int] = mapped_column(BigInteger, default=0)
    points_returned: Mapped[int] = mapped_column(BigInteger, default=0)
    stamps_reversed: Mapped[int] = mapped_column(Integer, default=0)
    spend_reversed: Mapped[int] = mapped_column(BigInteger, default=0)
    # Stamps of kinds 2..4 this refund took off: {"2": n, ...}; NULL when none.
    kind_stamps: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    lines: Mapped[list[Any]] = mapped_column(JSON, default=list)
    reason: Mapped[str | None] = mapped_column(String(500))
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int | None] = mapped_column(BigID)
    created_at: Mapped[Timestamp]


class IdempotencyRecord(Base):
    """The stored answer to a POS write. The row is claimed first (INSERT ... ON CONFLICT
    DO NOTHING), so a concurrent retry with the same key waits for the first one."""

    __tablename__ = "idempotency_records"
    __table_args__ = (Index("uq_idempotency_scope_key", "merchant_id", "scope", "key", unique=True),)

    id: Mapped[IdPK]
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"))
    scope: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(SmallInteger)
    response: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[Timestamp]
    expires_at: Mapped[dt.datetime | None]
