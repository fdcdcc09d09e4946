"""r_keeper state: the merchant's FarCards connection (its secret sealed) and the r_keeper
checks booked into our ledger."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from loyalwallet.db import Base, BigID, IdPK, Timestamp


class RkeeperConnection(Base):
    """One merchant's r_keeper (FarCards HTTP) connection.

    FarCards knows only the processing server's address, so the secret travels in the
    path the dealer writes into ExtDllHttp.ini; it is stored sealed (crypto.seal, column
    "rkeeper.secret") and `secret_hint` keeps its last characters for status output.
    `program_id` is the programme whose cards r_keeper serves. `tiers` maps our tier
    names to r_keeper's discount and bonus numbers: {"Gold": {"discount": 7, "bonus": 0}}."""

    __tablename__ = "rkeeper_connections"

    id: Mapped[IdPK]
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"), unique=True)
    program_id: Mapped[int] = mapped_column(BigID, ForeignKey("programs.id"))
    secret_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    secret_hint: Mapped[str] = mapped_column(String(16))
    tiers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    last_call_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[Timestamp]
    updated_at: Mapped[Timestamp]


class RkeeperCheck(Base):
    """An r_keeper check that moved one of our cards: booked as a purchase once (by its
    check key: restaurant, cash date, till, check number), reversed once when cancelled."""

    __tablename__ = "rkeeper_checks"
    __table_args__ = (
        UniqueConstraint("merchant_id", "check_key", "card_id"),
        Index("ix_rkeeper_checks_guid", "merchant_id", "check_guid"),
    )

    id: Mapped[IdPK]
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"))
    check_key: Mapped[str] = mapped_column(String(120))
    check_guid: Mapped[str | None] = mapped_column(String(64))
    card_id: Mapped[int] = mapped_column(BigID, ForeignKey("cards.id"))
    purchase_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("purchases.id"))
    state: Mapped[str] = mapped_column(String(16))  # booked | reversed | skipped
    created_at: Mapped[Timestamp]
    updated_at: Mapped[Timestamp]
