"""Rollups behind the dashboard, maintained incrementally from purchases.

- `analytics_card_months`: the set of (card, month) pairs in which a card bought
  something, with the card's joining month beside it: cohort retention is a GROUP BY over
  it instead of a scan of every purchase ever made.
- `analytics_cohort_months`: those pairs counted per (cohort month, month), what the
  retention table shows.
- `analytics_days`: per merchant, local day, location and program: purchases, revenue,
  checks with lines and checks with upsell (the trend and the upsell share).
- `analytics_day_categories`: the same days split by the category of the lines.
- `analytics_guest_cells` and `analytics_cohort_sizes`: a snapshot of the cards' figures
  (guests by days since the last purchase and number of purchases; cards joined per
  month), refreshed every few minutes, so "guests now", RFM and cohort sizes do not scan
  every card on each page load.
- `analytics_state`: the watermark (the last purchase id folded in), and per merchant the
  time of its snapshot.

Days and months are the merchant's local ones; location 0 stands for "no location".

Indexes declared here on core tables serve the dashboard's live queries.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Mapped, mapped_column

from loyalwallet.cards.models import Card
from loyalwallet.checkout.models import Purchase
from loyalwallet.db import Base, BigID, Timestamp


class CardMonth(Base):
    __tablename__ = "analytics_card_months"
    __table_args__ = (
        Index("ix_analytics_card_months_cohort", "merchant_id", "cohort_month", "month", "program_id"),
    )

    card_id: Mapped[int] = mapped_column(BigID, ForeignKey("cards.id"), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)  # "2026-11", merchant's time zone
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"))
    program_id: Mapped[int] = mapped_column(BigID, ForeignKey("programs.id"))
    cohort_month: Mapped[str] = mapped_column(String(7))


class CohortMonth(Base):
    """Per (cohort month, month): the cards of the cohort that bought in that month, i.e.
    analytics_card_months counted. Kept by the rollup fold with every new card month
    (rollup.py; filled for an existing database by its resumable first fill), so the
    retention table reads at most 12 x 12 rows per program."""

    __tablename__ = "analytics_cohort_months"

    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"), primary_key=True)
    program_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    cohort_month: Mapped[str] = mapped_column(String(7), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    cards: Mapped[int] = mapped_column(BigInteger, default=0)


class DayTotals(Base):
    __tablename__ = "analytics_days"

    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # "2026-11-24"
    location_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    program_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    purchases: Mapped[int] = mapped_column(BigInteger, default=0)
    revenue: Mapped[int] = mapped_column(BigInteger, default=0)
    lined: Mapped[int] = mapped_column(BigInteger, default=0)
    upsell: Mapped[int] = mapped_column(BigInteger, default=0)


class DayCategory(Base):
    __tablename__ = "analytics_day_categories"

    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    location_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    program_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    category: Mapped[str] = mapped_column(String(64), primary_key=True)  # "" for lines without one
    checks: Mapped[int] = mapped_column(BigInteger, default=0)
    revenue: Mapped[int] = mapped_column(BigInteger, default=0)


class GuestCell(Base):
    __tablename__ = "analytics_guest_cells"

    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"), primary_key=True)
    program_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    recency: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)  # -1: never bought
    visits: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    guests: Mapped[int] = mapped_column(BigInteger, default=0)
    spend: Mapped[int] = mapped_column(BigInteger, default=0)


class CohortSize(Base):
    __tablename__ = "analytics_cohort_sizes"

    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"), primary_key=True)
    program_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    cards: Mapped[int] = mapped_column(BigInteger, default=0)


class RollupState(Base):
    __tablename__ = "analytics_state"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[Timestamp]


# Cards issued in a period (by channel, installs vs activations): on PostgreSQL the
# columns the count reads ride along (an index-only scan, not a pass over the cards).
Index(
    "ix_cards_merchant_created",
    Card.merchant_id,
    Card.created_at,
    postgresql_include=["id", "channel", "program_id", "first_purchase_at"],
)
# The period scan of the dashboard reads only these columns: an index-only scan on PostgreSQL.
Index(
    "ix_purchases_analytics",
    Purchase.merchant_id,
    Purchase.created_at,
    Purchase.card_id,
    Purchase.amount,
    Purchase.location_id,
    Purchase.program_id,
)


# A bit string: BIT VARYING on PostgreSQL (bit_count, substring), text of '0'/'1' elsewhere.
Bits = Text().with_variant(postgresql.BIT(varying=True), "postgresql")


class GuestDays(Base):
    """Per card, the local days it bought on (analytics/activity_rules.py): buyers and
    repeat buyers of any window in one pass over the guests. Maintained by
    analytics/activity.py from the purchases (its own watermark in analytics_state)."""

    __tablename__ = "analytics_guest_days"
    # Buyers of a period ending now read only the index (activity.window_buyers).
    __table_args__ = (
        Index(
            "ix_analytics_guest_days_merchant",
            "merchant_id",
            "last_day",
            postgresql_include=["first_day", "multi", "program_id"],
        ),
    )

    card_id: Mapped[int] = mapped_column(BigID, ForeignKey("cards.id"), primary_key=True)
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"))
    program_id: Mapped[int] = mapped_column(BigInteger)
    first_day: Mapped[int] = mapped_column(Integer)  # date.toordinal() of the first local purchase day
    last_day: Mapped[int] = mapped_column(Integer)
    days: Mapped[str] = mapped_column(Bits)
    multi: Mapped[str | None] = mapped_column(Bits, nullable=True)


class GuestLocationDays(Base):
    """The same per card and location (location 0: none), for a dashboard filtered by
    location; "bought before" still counts any location (first_anywhere)."""

    __tablename__ = "analytics_guest_location_days"
    __table_args__ = (
        Index(
            "ix_analytics_guest_location_days_merchant",
            "merchant_id",
            "location_id",
            "last_day",
            postgresql_include=["first_day", "first_anywhere", "multi", "program_id"],
        ),
    )

    card_id: Mapped[int] = mapped_column(BigID, ForeignKey("cards.id"), primary_key=True)
    location_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"))
    program_id: Mapped[int] = mapped_column(BigInteger)
    first_day: Mapped[int] = mapped_column(Integer)
    last_day: Mapped[int] = mapped_column(Integer)
    # The card's first purchase day at ANY location (= its GuestDays.first_day), kept on
    # every location row: "bought before" of one location needs no look-up.
    first_anywhere: Mapped[int] = mapped_column(Integer)
    days: Mapped[str] = mapped_column(Bits)
    multi: Mapped[str | None] = mapped_column(Bits, nullable=True)
