"""the guests' Telegram card: the merchant's bot, one-time start links, bound chats;
SMS campaigns: caps, the estimate and what was spent

Revision ID: i17b_telegram_card
Revises: i13b_login_device
Create Date: 2026-12-07 04:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import loyalwallet.db

revision: str = "i17b_telegram_card"
down_revision: str | Sequence[str] | None = "i13b_login_device"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = loyalwallet.db.UTCDateTime(timezone=True)

# New tables and defaulted columns: old servers keep working.
online_safe = True


def upgrade() -> None:
    op.create_table(
        "telegram_bots",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("merchant_id", ID, nullable=False),
        sa.Column("token_enc", sa.LargeBinary(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_telegram_bots_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telegram_bots")),
        sa.UniqueConstraint("merchant_id", name=op.f("uq_telegram_bots_merchant_id")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_telegram_bots_token_hash")),
    )
    op.create_table(
        "telegram_starts",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("merchant_id", ID, nullable=False),
        sa.Column("card_id", ID, nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("chat_hash", sa.String(length=64), nullable=True),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("used_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["card_id"], ["cards.id"], name=op.f("fk_telegram_starts_card_id_cards")),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_telegram_starts_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telegram_starts")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_telegram_starts_token_hash")),
    )
    with op.batch_alter_table("telegram_starts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_telegram_starts_card_id"), ["card_id"], unique=False)
    op.create_table(
        "telegram_chats",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("merchant_id", ID, nullable=False),
        sa.Column("card_id", ID, nullable=False),
        sa.Column("chat_enc", sa.LargeBinary(), nullable=False),
        sa.Column("chat_hash", sa.String(length=64), nullable=False),
        sa.Column("notify", sa.Boolean(), nullable=False),
        sa.Column("notified_version", sa.Integer(), nullable=False),
        sa.Column("message_at", TS, nullable=True),
        sa.Column("bound_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["card_id"], ["cards.id"], name=op.f("fk_telegram_chats_card_id_cards")),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_telegram_chats_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telegram_chats")),
        sa.UniqueConstraint("card_id", name=op.f("uq_telegram_chats_card_id")),
        sa.UniqueConstraint("merchant_id", "chat_hash", name=op.f("uq_telegram_chats_merchant_id_chat_hash")),
    )

    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sms", sa.JSON(), server_default="{}", nullable=False))
        batch_op.add_column(sa.Column("sms_messages", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("sms_cost", sa.BigInteger(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_column("sms_cost")
        batch_op.drop_column("sms_messages")
        batch_op.drop_column("sms")
    op.drop_table("telegram_chats")
    with op.batch_alter_table("telegram_starts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_telegram_starts_card_id"))
    op.drop_table("telegram_starts")
    op.drop_table("telegram_bots")
