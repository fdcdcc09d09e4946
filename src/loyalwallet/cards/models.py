"""Cards, ledger entries (points lots), stamp entries and coupons/rewards.

The card row caches balance, stamps, tier and spend. It changes only in the same
transaction as the entries that explain it: card.balance == sum(ledger_entries.points)
and card.stamps == sum(stamp_entries.stamps), checked by `loyalwallet check-ledger`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from loyalwallet.db import Base, BigID, IdPK, Timestamp

LEDGER_KINDS = (
    "accrual",
    "redemption",
    "expiry",
    "refund",
    "adjustment",
    "welcome",
    "birthday",
    "referral",
    "campaign",
)


class Card(Base):
    __tablename__ = "cards"
    __table_args__ = (
        UniqueConstraint("merchant_id", "code"),
        Index("uq_cards_program_customer", "program_id", "customer_id", unique=True),
        # No index has pass_updated_at (every card write changes it; nothing reads cards by
        # it: Apple's "updated since" reads the registrations' change_seq).
        # Which merchants' cards changed since a time (analytics/snapshot.py): proportional
        # to the change, not to the number of merchants or cards. A purchase does not set
        # updated_at (it changes no indexed column: a HOT update, on PostgreSQL with the
        # table's fillfactor 90 from migration i14h_hot_cards); ix_purchases_created finds it.
        Index("ix_cards_updated", "updated_at", "merchant_id"),
    )

    id: Mapped[IdPK]
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"))
    program_id: Mapped[int] = mapped_column(BigID, ForeignKey("programs.id"))
    # NULL for an anonymous invitation card installed before the form is filled.
    customer_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("customers.id"))
    code: Mapped[str] = mapped_column(String(32))  # what the barcode holds
    serial: Mapped[str] = mapped_column(String(64), unique=True)  # Apple serialNumber
    auth_token: Mapped[str] = mapped_column(String(64))  # Apple authenticationToken
    public_token: Mapped[str] = mapped_column(String(64), unique=True)  # pass / web-card URLs
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | blocked
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    stamps: Mapped[int] = mapped_column(Integer, default=0)
    # A card with several stamp kinds: the stamps of kinds 2..4, {"2": n, ...} (kind 1 is
    # `stamps`); NULL for every single-kind card.
    kind_stamps: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    tier: Mapped[str | None] = mapped_column(String(100))
    spend: Mapped[int] = mapped_column(BigInteger, default=0)  # lifetime, minor units
    visits: Mapped[int] = mapped_column(Integer, default=0)
    last_visit_at: Mapped[dt.datetime | None]
    first_purchase_at: Mapped[dt.datetime | None]
    referrer_card_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("cards.id"))
    referral_rewarded: Mapped[bool] = mapped_column(default=False)
    channel: Mapped[str | None] = mapped_column(String(64))
    # The location whose cashier, POS key or join link issued the card (staff reports).
    issued_location_id: Mapped[int | None] = mapped_column(BigID)
    # The latest message for the guest (a campaign push); wallets show it with a
    # change alert. Written by campaigns, shown by the Apple pass and the web card.
    message: Mapped[str | None] = mapped_column(String(500))
    message_at: Mapped[dt.datetime | None]
    # Bumped on every change a wallet must show; pass_updated_at feeds PassKit's tag.
    version: Mapped[int] = mapped_column(Integer, default=1)
    pass_updated_at: Mapped[Timestamp]
    created_at: Mapped[Timestamp]
    updated_at: Mapped[Timestamp]


LEDGER_EXPIRING_WHERE = "merchant_id IS NOT NULL AND remaining > 0 AND expires_at IS NOT NULL"


class LedgerEntry(Base):
    """One points movement. Positive entries are lots: `remaining` is what is left of
    them to spend, consumed FIFO by expiry date; negative entries have remaining NULL."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        Index("ix_ledger_card_created", "card_id", "id"),
        # Open lots of a card, in the order they are consumed.
        Index("ix_ledger_open_lots", "card_id", "expires_at", "id"),
        # A merchant's open lots that can expire (the points_expiring trigger). Partial: an
        # entry without expiry, or spent, is not in it (a purchase's accrual in a programme
        # without expiry, a redemption: one index entry less each). `merchant_id IS NOT
        # NULL` (always true) keeps the expiry sweep, which names no merchant, on
        # ix_ledger_open_expiry below (same predicate otherwise).
        Index(
            "ix_ledger_expiring",
            "merchant_id",
            "expires_at",
            postgresql_where=text(LEDGER_EXPIRING_WHERE),
            sqlite_where=text(LEDGER_EXPIRING_WHERE),
        ),
        # The expiry sweep: only open lots that can expire, so it stays the size of what
        # is still open, not of the whole ledger.
        Index(
            "ix_ledger_open_expiry",
            "expires_at",
            "card_id",
            postgresql_where=text("remaining > 0 AND expires_at IS NOT NULL"),
            sqlite_where=text("remaining > 0 AND expires_at IS NOT NULL"),
        ),
    )

    id: Mapped[IdPK]
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"))
    card_id: Mapped[int] = mapped_column(BigID, ForeignKey("cards.id"))
    kind: Mapped[str] = mapped_column(String(16))
    points: Mapped[int] = mapped_column(BigInteger)
    remaining: Mapped[int | None] = mapped_column(BigInteger)
    expires_at: Mapped[dt.datetime | None]
    available_at: Mapped[dt.datetime | None]
    purchase_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("purchases.id"))
    refund_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("refunds.id"))
    actor_type: Mapped[str | None] = mapped_column(String(16))
    actor_id: Mapped[int | None] = mapped_column(BigID)
    reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[Timestamp]


class StampEntry(Base):
    __tablename__ = "stamp_entries"
    __table_args__ = (Index("ix_stamp_entries_card", "card_id", "id"),)

    id: Mapped[IdPK]
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"))
    card_id: Mapped[int] = mapped_column(BigID, ForeignKey("cards.id"))
    kind: Mapped[str] = mapped_column(String(16))  # purchase | reward | refund | adjustment
    stamps: Mapped[int] = mapped_column(Integer)
    # Which stamp kind of the programme (1 = the only kind of a single-kind card).
    stamp_kind: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))
    purchase_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("purchases.id"))
    refund_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("refunds.id"))
    coupon_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("coupons.id"))
    reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[Timestamp]


class Coupon(Base):
    """A reward or coupon: a full stamp card's reward, a campaign's offer, an anonymous
    printed code. `kind` is percent_off (value in basis points), fixed_off (minor units),
    free_item (value = the most it takes off, 0 = the item's price) or bonus_points."""

    __tablename__ = "coupons"
    __table_args__ = (
        UniqueConstraint("merchant_id", "code"),
        Index("ix_coupons_card_status", "card_id", "status"),
    )

    id: Mapped[IdPK]
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"))
    card_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("cards.id"))
    program_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("programs.id"))
    code: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[int] = mapped_column(BigInteger, default=0)
    sku: Mapped[str | None] = mapped_column(String(64))
    category: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(32))  # stamp_reward | campaign | trigger | manual | anonymous
    source_id: Mapped[int | None] = mapped_column(BigID)
    # The offer (template) it was issued from, if any (campaigns.models.Offer).
    offer_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("offers.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="available")  # available|used|revoked
    uses_left: Mapped[int] = mapped_column(Integer, default=1)
    min_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    valid_from: Mapped[dt.datetime | None]
    valid_until: Mapped[dt.datetime | None]
    used_at: Mapped[dt.datetime | None]
    created_at: Mapped[Timestamp]
