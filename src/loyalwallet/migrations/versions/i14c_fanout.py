"""google_message_sends: per-card progress of batched Google Wallet messages

Revision ID: i14c_fanout
Revises: i14d_guest_activity
Create Date: 2026-12-07 12:50:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import loyalwallet.db

revision: str = "i14c_fanout"
down_revision: str | Sequence[str] | None = "i14d_guest_activity"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Only adds a table: servers of the previous release keep working (docs/upgrades.md).
online_safe = True


def upgrade() -> None:
    op.create_table(
        "google_message_sends",
        sa.Column("message_id", sa.String(length=200), nullable=False),
        sa.Column("card_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("merchant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("batch", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("created_at", loyalwallet.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["card_id"], ["cards.id"], name=op.f("fk_google_message_sends_card_id_cards")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_google_message_sends_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_google_message_sends")),
    )
    with op.batch_alter_table("google_message_sends", schema=None) as batch_op:
        batch_op.create_index("ix_google_message_sends_batch", ["batch", "status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("google_message_sends", schema=None) as batch_op:
        batch_op.drop_index("ix_google_message_sends_batch")
    op.drop_table("google_message_sends")
