"""A guest's rating of one visit (purchase)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalwallet.db import Base, BigID, IdPK, Timestamp


class Feedback(Base):
    """One answer per purchase (unique purchase_id); the guest may edit it for 24 h."""

    __tablename__ = "feedback"
    __table_args__ = (Index("ix_feedback_merchant_created", "merchant_id", "created_at"),)

    id: Mapped[IdPK]
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"))
    purchase_id: Mapped[int] = mapped_column(BigID, ForeignKey("purchases.id"), unique=True)
    card_id: Mapped[int] = mapped_column(BigID, ForeignKey("cards.id"), index=True)
    location_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("locations.id"))
    staff_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("staff.id"))  # the cashier
    score: Mapped[int] = mapped_column(SmallInteger)
    problems: Mapped[list[Any]] = mapped_column(JSON, default=list)
    comment: Mapped[str | None] = mapped_column(String(1000))
    edits: Mapped[int] = mapped_column(SmallInteger, default=0)
    created_at: Mapped[Timestamp]
    updated_at: Mapped[dt.datetime | None]
