"""Subscription programmes, the subscriptions sold on cards, and their units ledger.

A subscription caches what is left (`units_left`) and what was paid (`paid`, net of
refunds); both change only in the same transaction as the entries that explain them:
units_left == sum(entries.units), paid == sum(entries.amount), 0 <= units_left <=
units_total, paid >= 0, and no local day has more uses than `daily_limit` — checked by
`loyalwallet check-ledger` (subscriptions.ledger.check_ledger). Money is integer minor
units of the merchant's currency.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, Date, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalwallet.db import Base, BigID, IdPK, Timestamp

# sale: units and price of a sale (+, +); renewal: another period (+, +); use: one unit
# consumed (-1, 0); return: a use given back by a refunded purchase (+1, 0); expiry: what
# is left written off at the end (-left, 0); refund: the subscription cancelled, money
# back (-left, -amount).
ENTRY_KINDS = ("sale", "renewal", "use", "return", "expiry", "refund")


class SubscriptionPlan(Base):
    """What is sold: N units over so many days, at most so many a day, covering some
    items or categories (none listed: any item)."""

    __tablename__ = "subscription_plans"
    __table_args__ = (Index("ix_subscription_plans_merchant", "merchant_id", "status"),)

    id: Mapped[IdPK]
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"))
    name: Mapped[str] = mapped_column(String(200))
    units: Mapped[int] = mapped_column(Integer)
    period_days: Mapped[int] = mapped_column(Integer)
    daily_limit: Mapped[int | None] = mapped_column(Integer)  # None: no daily limit
    price: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3), default="RUB")
    # {"skus": [...], "categories": [...]}: the lines one unit pays for (empty: any line).
    covers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    refund_policy: Mapped[str] = mapped_column(String(16), default="pro_rata")  # pro_rata | none
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | archived
    created_at: Mapped[Timestamp]
    updated_at: Mapped[Timestamp]


class Subscription(Base):
    __tablename__ = "subscriptions"
    __table_args__ = (
        Index("ix_subscriptions_card", "card_id", "status"),
        Index("ix_subscriptions_due", "status", "ends_at"),
        Index("ix_subscriptions_merchant", "merchant_id", "status"),
    )

    id: Mapped[IdPK]
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"))
    plan_id: Mapped[int] = mapped_column(BigID, ForeignKey("subscription_plans.id"))
    card_id: Mapped[int] = mapped_column(BigID, ForeignKey("cards.id"))
    name: Mapped[str] = mapped_column(String(200))  # the plan's name when sold
    currency: Mapped[str] = mapped_column(String(3), default="RUB")
    # Copied from the plan at the sale (a later change of the plan does not alter it).
    daily_limit: Mapped[int | None] = mapped_column(Integer)
    covers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    refund_policy: Mapped[str] = mapped_column(String(16), default="pro_rata")
    units_total: Mapped[int] = mapped_column(Integer)  # sold over the sale and renewals
    units_left: Mapped[int] = mapped_column(Integer)
    price_total: Mapped[int] = mapped_column(BigInteger)  # paid over the sale and renewals
    paid: Mapped[int] = mapped_column(BigInteger)  # price_total minus refunds
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | expired | refunded
    starts_at: Mapped[dt.datetime]
    ends_at: Mapped[dt.datetime]
    location_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("locations.id"))
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int | None] = mapped_column(BigID)
    external_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[Timestamp]
    updated_at: Mapped[Timestamp]


class SubscriptionEntry(Base):
    """One movement of a subscription's units (and money, for sales, renewals and refunds)."""

    __tablename__ = "subscription_entries"
    __table_args__ = (
        Index("ix_subscription_entries_sub", "subscription_id", "id"),
        Index("ix_subscription_entries_day", "subscription_id", "local_day"),
        Index("ix_subscription_entries_merchant_created", "merchant_id", "created_at"),
    )

    id: Mapped[IdPK]
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"))
    subscription_id: Mapped[int] = mapped_column(BigID, ForeignKey("subscriptions.id"))
    kind: Mapped[str] = mapped_column(String(16))
    units: Mapped[int] = mapped_column(Integer)  # signed
    amount: Mapped[int] = mapped_column(BigInteger, default=0)  # signed money
    # For a use in a purchase: what it paid of the check (money the till did not collect).
    covered: Mapped[int] = mapped_column(BigInteger, default=0)
    local_day: Mapped[dt.date] = mapped_column(Date)  # the merchant's day (daily limits, reports)
    purchase_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("purchases.id"), index=True)
    # For a return: the use it gives back.
    use_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("subscription_entries.id"))
    location_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("locations.id"))
    external_id: Mapped[str | None] = mapped_column(String(128))
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int | None] = mapped_column(BigID)
    created_at: Mapped[Timestamp]
