"""one-time codes that link the owner's Telegram chat

Revision ID: 0009_telegram_links
Revises: 0008_trigger_archive
Create Date: 2026-11-24 19:31:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import loyalwallet.db

revision: str = "0009_telegram_links"
down_revision: str | Sequence[str] | None = "0008_trigger_archive"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Safe to run while servers of the previous release still serve (rolling upgrade): it
# only adds tables, indexes, and nullable or defaulted columns. See docs/upgrades.md.
online_safe = True


def upgrade() -> None:
    op.create_table(
        "telegram_links",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("merchant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("bot_username", sa.String(length=64), nullable=False),
        sa.Column("expires_at", loyalwallet.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("chat_id", sa.String(length=32), nullable=True),
        sa.Column("linked_at", loyalwallet.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", loyalwallet.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_telegram_links_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telegram_links")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_telegram_links_code_hash")),
    )
    with op.batch_alter_table("telegram_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_telegram_links_merchant_id"), ["merchant_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("telegram_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_telegram_links_merchant_id"))
    op.drop_table("telegram_links")
