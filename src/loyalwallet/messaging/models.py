"""Card links sent to guests (SMS, e-mail, Telegram): the record and the rate limit; and
what became of each SMS and e-mail after it left (delivery reports, late bounces)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
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
    # queued → sent | bounced (refused at once or a late DSN) | failed; an SMS goes on to
    # delivered | undelivered by the provider's report (messaging.reports).
    status: Mapped[str] = mapped_column(String(16), default="queued")
    created_at: Mapped[Timestamp]


class MessageDelivery(Base):
    """One SMS or e-mail that left us, for a card send or a campaign recipient.
    `ref`: SMS.ru's sms_id, or the random token of the e-mail's bounce address
    (bounce+<token>@...). `status`: sent → delivered | undelivered (SMS) | bounced (e-mail).
    `address_hash`: the keyed hash of the e-mail address, so a DSN is believed only for
    the address the message went to. `next_poll_at`: when to ask sms/status next (None
    once final, or for e-mail)."""

    __tablename__ = "message_deliveries"
    __table_args__ = (
        UniqueConstraint("channel", "ref"),
        Index("ix_message_deliveries_poll", "next_poll_at"),
        Index("ix_message_deliveries_campaign", "campaign_id", "status"),
        Index("ix_message_deliveries_send", "card_send_id"),
    )

    id: Mapped[IdPK]
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"))
    channel: Mapped[str] = mapped_column(String(8))  # sms | email
    ref: Mapped[str] = mapped_column(String(64))
    card_send_id: Mapped[int | None] = mapped_column(BigID)
    campaign_id: Mapped[int | None] = mapped_column(BigID)
    recipient_id: Mapped[int | None] = mapped_column(BigID)
    address_hash: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="sent")
    code: Mapped[str | None] = mapped_column(String(32))
    polls: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_poll_at: Mapped[dt.datetime | None]
    created_at: Mapped[Timestamp]
    updated_at: Mapped[Timestamp]


class MessageSuppression(Base):
    """An address not to be used again: an e-mail address that bounced for good (5.x.x at
    send time or a late DSN), a phone SMS.ru found no route to. Only a keyed hash of the
    address is kept (messaging.suppression.key); `customer_id` is the guest it bounced
    for, so the mark is cleared when that guest's address changes and erased with them."""

    __tablename__ = "message_suppressions"
    __table_args__ = (
        UniqueConstraint("merchant_id", "channel", "address_hash"),
        Index("ix_message_suppressions_customer", "customer_id"),
    )

    id: Mapped[IdPK]
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"))
    channel: Mapped[str] = mapped_column(String(8))  # email | sms
    address_hash: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[int | None] = mapped_column(BigID)
    code: Mapped[str | None] = mapped_column(String(32))  # 5.1.1, or SMS.ru's 150
    created_at: Mapped[Timestamp]
