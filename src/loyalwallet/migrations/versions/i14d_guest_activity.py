"""analytics_guest_days, analytics_guest_location_days: per card (and location), the local days it bought on (a bitmap)

Revision ID: i14d_guest_activity
Revises: i18c_stamp_kinds
Create Date: 2026-12-07 12:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import loyalwallet.db

revision: str = "i14d_guest_activity"
down_revision: str | Sequence[str] | None = "i18c_stamp_kinds"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Only adds a table: the previous release keeps working. The table is filled by the
# worker's fold (or `loyalwallet analytics fold`), resumable; until it is done the
# dashboard computes buyers from the purchases as before.
online_safe = True

BITS = sa.Text().with_variant(postgresql.BIT(varying=True), "postgresql")


def upgrade() -> None:
    op.create_table(
        "analytics_guest_days",
        sa.Column("card_id", loyalwallet.db.BigID, nullable=False),
        sa.Column("merchant_id", loyalwallet.db.BigID, nullable=False),
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("first_day", sa.Integer(), nullable=False),
        sa.Column("last_day", sa.Integer(), nullable=False),
        sa.Column("days", BITS, nullable=False),
        sa.Column("multi", BITS, nullable=True),
        sa.ForeignKeyConstraint(["card_id"], ["cards.id"]),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"]),
        sa.PrimaryKeyConstraint("card_id"),
    )
    op.create_index(
        "ix_analytics_guest_days_merchant", "analytics_guest_days", ["merchant_id", "last_day"], unique=False
    )

    op.create_table(
        "analytics_guest_location_days",
        sa.Column("card_id", loyalwallet.db.BigID, nullable=False),
        sa.Column("location_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("merchant_id", loyalwallet.db.BigID, nullable=False),
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("first_day", sa.Integer(), nullable=False),
        sa.Column("last_day", sa.Integer(), nullable=False),
        sa.Column("first_anywhere", sa.Integer(), nullable=False),
        sa.Column("days", BITS, nullable=False),
        sa.Column("multi", BITS, nullable=True),
        sa.ForeignKeyConstraint(["card_id"], ["cards.id"]),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"]),
        sa.PrimaryKeyConstraint("card_id", "location_id"),
    )
    op.create_index(
        "ix_analytics_guest_location_days_merchant",
        "analytics_guest_location_days",
        ["merchant_id", "location_id", "last_day"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_analytics_guest_location_days_merchant", table_name="analytics_guest_location_days")
    op.drop_table("analytics_guest_location_days")
    op.drop_index("ix_analytics_guest_days_merchant", table_name="analytics_guest_days")
    op.drop_table("analytics_guest_days")
