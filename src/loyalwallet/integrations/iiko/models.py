"""iiko state: the merchant's connection (API login sealed), what iiko holds of each of
our cards, the gifts credited in iiko, and the iiko orders booked into our ledger."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from loyalwallet.db import Base, BigID, IdPK, Timestamp


class IikoConnection(Base):
    """One merchant's iikoCloud connection.

    The API login is sealed (crypto.seal, column "iiko.api_login"); `login_hint` keeps its
    last characters for the pages. `card_next` is the next number of the reserved range
    [card_first, card_last] to give out. `tiers` maps iiko customer-category ids to our
    tier names (each tier has its own card design, as for our programmes). `state` is
    "ok", "error" (last_error says why, in plain words) or "unchecked"."""

    __tablename__ = "iiko_connections"

    id: Mapped[IdPK]
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"), unique=True)
    api_login_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    login_hint: Mapped[str] = mapped_column(String(16))
    organization_id: Mapped[str] = mapped_column(String(64))
    organization_name: Mapped[str] = mapped_column(String(200))
    program_id: Mapped[str | None] = mapped_column(String(64))  # the iiko loyalty programme
    wallet_id: Mapped[str | None] = mapped_column(String(64))  # the balance shown on cards
    wallet_name: Mapped[str | None] = mapped_column(String(200))
    card_first: Mapped[int] = mapped_column(BigInteger)
    card_last: Mapped[int] = mapped_column(BigInteger)
    card_next: Mapped[int] = mapped_column(BigInteger)
    tiers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # category id -> tier name
    categories: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # category id -> iiko name
    webhook_token: Mapped[str] = mapped_column(String(64))
    # A programme of ours (bonus, discount, stamp) whose purchases iiko rings up: closed
    # iiko orders of its guests become purchases in our ledger (orders.py).
    ledger_program_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("programs.id"))
    state: Mapped[str] = mapped_column(String(16), default="unchecked")
    last_error: Mapped[str | None] = mapped_column(String(500))
    checked_at: Mapped[dt.datetime | None]
    created_at: Mapped[Timestamp]
    updated_at: Mapped[Timestamp]


class IikoGuest(Base):
    """What iiko holds for one of our cards: the iiko customer, its card number (= our
    card's code), and the last values read (balance in minor units, category)."""

    __tablename__ = "iiko_guests"
    __table_args__ = (
        UniqueConstraint("merchant_id", "customer_id"),
        Index("ix_iiko_guests_sync", "merchant_id", "activity_at"),
    )

    card_id: Mapped[int] = mapped_column(BigID, ForeignKey("cards.id"), primary_key=True)
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"))
    customer_id: Mapped[str] = mapped_column(String(64))
    card_number: Mapped[str] = mapped_column(String(32))
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    category_id: Mapped[str | None] = mapped_column(String(64))
    category_name: Mapped[str | None] = mapped_column(String(200))
    last_order: Mapped[str | None] = mapped_column(String(40))
    # When iiko last told us something happened (an order webhook): synced first.
    activity_at: Mapped[dt.datetime | None]
    synced_at: Mapped[dt.datetime | None]


class IikoTopup(Base):
    """A gift credited in iiko (wallet/topup): at most one per operation id."""

    __tablename__ = "iiko_topups"

    operation_id: Mapped[str] = mapped_column(String(120), primary_key=True)
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"))
    card_id: Mapped[int] = mapped_column(BigID, ForeignKey("cards.id"))
    points: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(String(200))
    # pending | sent (asked of iiko, answer unknown: looked up before sending again) | done | failed
    state: Mapped[str] = mapped_column(String(16), default="pending")
    error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[Timestamp]
    done_at: Mapped[dt.datetime | None]


class IikoOrder(Base):
    """A closed iiko order booked as a purchase in our ledger (iiko as the till)."""

    __tablename__ = "iiko_orders"
    __table_args__ = (UniqueConstraint("merchant_id", "order_id"),)

    id: Mapped[IdPK]
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"))
    order_id: Mapped[str] = mapped_column(String(64))
    purchase_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("purchases.id"))
    state: Mapped[str] = mapped_column(String(16))  # booked | reversed | skipped
    created_at: Mapped[Timestamp]
    updated_at: Mapped[Timestamp]
