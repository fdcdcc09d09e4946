"""analytics_cohort_months: the retention table's counts per (cohort month, month), kept
by the rollup fold; a merged invitation card's card months moved to its kept card

Revision ID: i14f_cohort_months
Revises: i14e_merged_cards
Create Date: 2026-12-07 18:50:00.000000
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import loyalwallet.db

revision: str = "i14f_cohort_months"
down_revision: str | Sequence[str] | None = "i14e_merged_cards"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Adds a table, moves the card months of merged invitation cards (few rows) and rebuilds
# three indexes with more columns (PostgreSQL, CONCURRENTLY: no write lock): the previous
# release keeps working (it does not read the counts). An existing database's
# counts are filled by the fold (worker, or `loyalwallet analytics fold`), resumable;
# until then the dashboard counts the card months as before.
online_safe = True

ALL = 2**62  # analytics.cohorts.ALL: every card month counted
MERGED = (
    "SELECT invitation_card_id AS src, max(card_id) AS dst FROM joins"
    " WHERE invitation_card_id IS NOT NULL AND card_id <> invitation_card_id GROUP BY invitation_card_id"
)


# PostgreSQL: indexes that carry what the dashboard's counts read (index-only scans).
COVERING = [
    (
        "ix_cards_merchant_created",
        "cards",
        ["merchant_id", "created_at"],
        ["id", "channel", "program_id", "first_purchase_at"],
    ),
    (
        "ix_analytics_guest_days_merchant",
        "analytics_guest_days",
        ["merchant_id", "last_day"],
        ["first_day", "multi", "program_id"],
    ),
    (
        "ix_analytics_guest_location_days_merchant",
        "analytics_guest_location_days",
        ["merchant_id", "location_id", "last_day"],
        ["first_day", "first_anywhere", "multi", "program_id"],
    ),
]


def _covering(include: bool) -> None:
    """Rebuild the indexes with (or without) the carried columns, CONCURRENTLY: writes to
    the cards go on meanwhile (docs/upgrades.md)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    with op.get_context().autocommit_block():
        for name, table, columns, extra in COVERING:
            carried = f" INCLUDE ({', '.join(extra)})" if include else ""
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}_new")
            op.execute(f"CREATE INDEX CONCURRENTLY {name}_new ON {table} ({', '.join(columns)}){carried}")
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
            op.execute(f"ALTER INDEX {name}_new RENAME TO {name}")


def upgrade() -> None:
    op.create_table(
        "analytics_cohort_months",
        sa.Column("merchant_id", loyalwallet.db.BigID, nullable=False),
        sa.Column("program_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("cohort_month", sa.String(length=7), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("cards", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_analytics_cohort_months_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint(
            "merchant_id", "program_id", "cohort_month", "month", name=op.f("pk_analytics_cohort_months")
        ),
    )
    bind = op.get_bind()
    # A merged invitation card's card months are its kept card's (one guest, the kept
    # card's cohort), as the fold now writes them.
    pairs = bind.execute(
        sa.text(
            f"SELECT m.src, m.dst, k.program_id, k.created_at, z.timezone FROM ({MERGED}) m"
            " JOIN cards k ON k.id = m.dst JOIN merchants z ON z.id = k.merchant_id"
            " WHERE EXISTS (SELECT 1 FROM analytics_card_months cm WHERE cm.card_id = m.src)"
        ).columns(created_at=loyalwallet.db.UTCDateTime())
    ).all()
    for src, dst, program_id, created_at, tz in pairs:
        cohort = created_at.astimezone(zoneinfo.ZoneInfo(tz or "UTC")).strftime("%Y-%m")
        bind.execute(
            sa.text(
                "INSERT INTO analytics_card_months (card_id, month, merchant_id, program_id, cohort_month)"
                " SELECT :dst, month, merchant_id, :program, :cohort FROM analytics_card_months"
                " WHERE card_id = :src ON CONFLICT (card_id, month) DO NOTHING"
            ),
            {"src": src, "dst": dst, "program": program_id, "cohort": cohort},
        )
        bind.execute(sa.text("DELETE FROM analytics_card_months WHERE card_id = :src"), {"src": src})
    # Nothing folded yet: nothing to fill, the fold counts as it goes. Else the fill
    # starts at the first card.
    folded = bind.execute(sa.text("SELECT 1 FROM analytics_card_months LIMIT 1")).first() is not None
    bind.execute(
        sa.text(
            "INSERT INTO analytics_state (name, value, updated_at) VALUES ('cohort-months', :v, :at)"
        ).bindparams(sa.bindparam("at", type_=loyalwallet.db.UTCDateTime())),
        {"v": 0 if folded else ALL, "at": dt.datetime.now(dt.UTC)},
    )
    _covering(True)


def downgrade() -> None:
    _covering(False)
    op.execute("DELETE FROM analytics_state WHERE name = 'cohort-months'")
    op.drop_table("analytics_cohort_months")
