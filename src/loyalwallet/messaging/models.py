"""Card links sent to guests (SMS, e-mail, Telegram): the record and the rate limit."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalwallet.db import Base, BigID, IdPK, Timestamp


class CardSend(Base):
    __tablename__ = "card_sends"
    __table_args__ = (Index("ix_card_sends_card_created", "card_id", "created_at"),)

    id: Mapped[IdPK]
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"))
    card_id: Mapped[int] = mapped_column(BigID, ForeignKey("cards.id"))
    channel: Mapped[str] = mapped_column(String(16))  # sms | email | telegram
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int | None] = mapped_column(BigID)
    # queued → sent | bounced (the address was refused) | failed; SMS stay "queued" (the
    # SMS provider's report is not followed yet).
    status: Mapped[str] = mapped_column(String(16), default="queued")
    created_at: Mapped[Timestamp]
