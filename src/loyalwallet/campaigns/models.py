"""Offers (coupon templates), printable code batches, push campaigns and their
recipients, automatic triggers and the record of what each trigger already fired."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from loyalwallet.db import Base, BigID, IdPK, Timestamp


class Offer(Base):
    """A coupon template: what a coupon does and how long it lasts. Campaigns, triggers,
    a manager and printed batches issue Coupon rows (cards.models) from it."""

    __tablename__ = "offers"
    __table_args__ = (Index("ix_offers_merchant_status", "merchant_id", "status"),)

    id: Mapped[IdPK]
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"))
    # Usable only with cards of this program (None: any program, or anonymous use).
    program_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("programs.id"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(500), default="")
    # percent_off (value in basis points) | fixed_off (minor units) | free_item (value =
    # the most it takes off, 0 = the item's price) | bonus_points (points).
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[int] = mapped_column(BigInteger, default=0)
    sku: Mapped[str | None] = mapped_column(String(64))
    category: Mapped[str | None] = mapped_column(String(64))
    min_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    uses_per_coupon: Mapped[int] = mapped_column(Integer, default=1)
    # A coupon lasts valid_days from its issue, and never past valid_until.
    valid_days: Mapped[int | None] = mapped_column(Integer)
    valid_from: Mapped[dt.datetime | None]
    valid_until: Mapped[dt.datetime | None]
    # At most this many coupons are ever issued (None: no limit).
    max_issued: Mapped[int | None] = mapped_column(Integer)
    issued: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | archived
    created_at: Mapped[Timestamp]
    updated_at: Mapped[Timestamp]


class CouponBatch(Base):
    """Anonymous codes printed for flyers, gift certificates and partners."""

    __tablename__ = "coupon_batches"

    id: Mapped[IdPK]
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"), index=True)
    offer_id: Mapped[int] = mapped_column(BigID, ForeignKey("offers.id"))
    name: Mapped[str] = mapped_column(String(200))
    count: Mapped[int] = mapped_column(Integer)
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int | None] = mapped_column(BigID)
    created_at: Mapped[Timestamp]


class Campaign(Base):
    __tablename__ = "campaigns"
    __table_args__ = (Index("ix_campaigns_merchant_created", "merchant_id", "id"),)

    id: Mapped[IdPK]
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"))
    name: Mapped[str] = mapped_column(String(200))
    # draft | scheduled | sending | sent | cancelled | failed
    status: Mapped[str] = mapped_column(String(16), default="draft")
    segment: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    header: Mapped[str] = mapped_column(String(100))
    body: Mapped[str] = mapped_column(String(500))
    points: Mapped[int] = mapped_column(BigInteger, default=0)
    offer_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("offers.id"))
    # wallet (the card's message: Apple, Google, web card) or email (to guests with an
    # address and marketing consent; delivered by messaging.campaign_email).
    channel: Mapped[str] = mapped_column(String(16), default="wallet", server_default="wallet")
    # SMS campaigns (messaging.campaign_sms): {"cap_messages", "cap_cost" (minor units),
    # "estimate": {"recipients", "messages", "cost", "at"}} and what was spent so far
    # (reserved message by message against the caps).
    sms: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, server_default="{}")
    sms_messages: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    sms_cost: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # Share of the segment (basis points) kept out as a control group for the effect.
    holdout_bp: Mapped[int] = mapped_column(Integer, default=0)
    scheduled_at: Mapped[dt.datetime | None]
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    recipients: Mapped[int] = mapped_column(Integer, default=0)  # messaged, holdout excluded
    holdout: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(500))
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int | None] = mapped_column(BigID)
    created_at: Mapped[Timestamp]
    updated_at: Mapped[Timestamp]


class CampaignRecipient(Base):
    """One card of a campaign's audience: messaged, or kept in the holdout group."""

    __tablename__ = "campaign_recipients"
    __table_args__ = (
        UniqueConstraint("campaign_id", "card_id"),
        Index("ix_campaign_recipients_status", "campaign_id", "status"),
    )

    id: Mapped[IdPK]
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"))
    campaign_id: Mapped[int] = mapped_column(BigID, ForeignKey("campaigns.id"))
    card_id: Mapped[int] = mapped_column(BigID, ForeignKey("cards.id"))
    holdout: Mapped[bool] = mapped_column(Boolean, default=False)
    # pending | sent | failed | skipped (holdout rows stay "holdout")
    status: Mapped[str] = mapped_column(String(16), default="pending")
    coupon_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("coupons.id"))
    error: Mapped[str | None] = mapped_column(String(200))
    sent_at: Mapped[dt.datetime | None]


class Trigger(Base):
    """An automatic message: birthday, points expiring, lapsed guest, happy hour,
    tier up, welcome. `params` is validated by campaigns.rules.TriggerParams."""

    __tablename__ = "triggers"
    __table_args__ = (
        Index("ix_triggers_merchant_kind", "merchant_id", "kind"),
        Index("ix_triggers_next_run", "next_run_at"),
    )

    id: Mapped[IdPK]
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"))
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    program_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("programs.id"))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The merchant-local date of the latest scheduled run (claimed before running).
    last_run_on: Mapped[dt.date | None] = mapped_column(Date)
    # When the schedule should look at it next (UTC; NULL: never: an event trigger, or
    # switched off). The periodic job reads only the due ones, through the index.
    next_run_at: Mapped[dt.datetime | None]
    # "Deleted": never fires again and leaves the lists; its firings stay.
    archived_at: Mapped[dt.datetime | None]
    created_at: Mapped[Timestamp]
    updated_at: Mapped[Timestamp]


class TriggerFiring(Base):
    """A trigger fired for a card on an occasion (the birthday of 2026, the lapse after
    the visit of 1 March, ...): the unique key makes it fire once per occasion."""

    __tablename__ = "trigger_firings"
    __table_args__ = (
        UniqueConstraint("trigger_id", "card_id", "occasion"),
        Index("ix_trigger_firings_merchant_created", "merchant_id", "created_at"),
    )

    id: Mapped[IdPK]
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"))
    trigger_id: Mapped[int] = mapped_column(BigID, ForeignKey("triggers.id"))
    card_id: Mapped[int] = mapped_column(BigID, ForeignKey("cards.id"))
    occasion: Mapped[str] = mapped_column(String(64))
    points: Mapped[int] = mapped_column(BigInteger, default=0)
    coupon_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("coupons.id"))
    created_at: Mapped[Timestamp]
