"""Anti-fraud alerts (blocked or only flagged operations), the daily digests sent, and
the one-time codes that link the owner's Telegram chat."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, Date, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from loyalwallet.db import Base, BigID, IdPK, Timestamp


class Alert(Base):
    __tablename__ = "fraud_alerts"
    __table_args__ = (
        Index("ix_fraud_alerts_merchant_created", "merchant_id", "id"),
        Index("ix_fraud_alerts_dedup", "merchant_id", "dedup_key", "last_seen_at"),
    )

    id: Mapped[IdPK]
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"))
    rule: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(16))  # blocked | alerted
    operation: Mapped[str] = mapped_column(String(16))  # purchase | refund
    card_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("cards.id"))
    card_code: Mapped[str | None] = mapped_column(String(32))
    actor_type: Mapped[str | None] = mapped_column(String(16))
    actor_id: Mapped[int | None] = mapped_column(BigID)
    actor_name: Mapped[str | None] = mapped_column(String(200))
    location_id: Mapped[int | None] = mapped_column(BigID)
    amount: Mapped[int | None] = mapped_column(BigInteger)
    message: Mapped[str] = mapped_column(String(500))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The same rule tripped again for the same card/cashier soon after: counted here
    # instead of a new alert (and a new Telegram message).
    dedup_key: Mapped[str] = mapped_column(String(128))
    count: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[Timestamp]
    last_seen_at: Mapped[Timestamp]
    acknowledged_at: Mapped[dt.datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(200))


class Digest(Base):
    """The daily Telegram digest of a merchant-local day: sent once."""

    __tablename__ = "fraud_digests"
    __table_args__ = (UniqueConstraint("merchant_id", "day"),)

    id: Mapped[IdPK]
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"))
    day: Mapped[dt.date] = mapped_column(Date)
    created_at: Mapped[Timestamp]


class TelegramLink(Base):
    """A one-time code for `https://t.me/<bot>?start=<code>`: the chat that sends
    `/start <code>` to the bot becomes the merchant's alert chat. Only the hash is kept."""

    __tablename__ = "telegram_links"

    id: Mapped[IdPK]
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    bot_username: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[dt.datetime]
    # Set once a chat has used the code (it never works again).
    chat_id: Mapped[str | None] = mapped_column(String(32))
    linked_at: Mapped[dt.datetime | None]
    created_at: Mapped[Timestamp]
