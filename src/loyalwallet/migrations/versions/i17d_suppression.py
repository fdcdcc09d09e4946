"""Addresses not to be used again: hard-bounced e-mail addresses and phones with no route,
kept as keyed hashes (message_suppressions)

Revision ID: i17d_suppression
Revises: i14c_fanout
Create Date: 2026-12-07 13:50:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import loyalwallet.db

revision: str = "i17d_suppression"
down_revision: str | Sequence[str] | None = "i14c_fanout"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = loyalwallet.db.UTCDateTime(timezone=True)

# A new table only: old servers keep working.
online_safe = True


def upgrade() -> None:
    op.create_table(
        "message_suppressions",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("merchant_id", ID, nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("address_hash", sa.String(length=64), nullable=False),
        sa.Column("customer_id", ID, nullable=True),
        sa.Column("code", sa.String(length=32), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_message_suppressions_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_suppressions")),
        sa.UniqueConstraint(
            "merchant_id",
            "channel",
            "address_hash",
            name=op.f("uq_message_suppressions_merchant_id_channel_address_hash"),
        ),
    )
    op.create_index("ix_message_suppressions_customer", "message_suppressions", ["customer_id"])


def downgrade() -> None:
    op.drop_index("ix_message_suppressions_customer", table_name="message_suppressions")
    op.drop_table("message_suppressions")
