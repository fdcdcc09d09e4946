"""r_keeper: the merchant's FarCards connection and the r_keeper checks booked

Revision ID: i16c_rkeeper
Revises: i18b_subscriptions
Create Date: 2026-12-07 12:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import loyalwallet.db

revision: str = "i16c_rkeeper"
down_revision: str | Sequence[str] | None = "i18b_subscriptions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Only adds tables: old servers keep working while and after it runs.
online_safe = True

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "rkeeper_connections",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("merchant_id", ID, nullable=False),
        sa.Column("program_id", ID, nullable=False),
        sa.Column("secret_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("secret_hint", sa.String(length=16), nullable=False),
        sa.Column("tiers", sa.JSON(), nullable=False),
        sa.Column("last_call_at", loyalwallet.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("created_at", loyalwallet.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", loyalwallet.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_rkeeper_connections_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_rkeeper_connections_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rkeeper_connections")),
        sa.UniqueConstraint("merchant_id", name=op.f("uq_rkeeper_connections_merchant_id")),
    )
    op.create_table(
        "rkeeper_checks",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("merchant_id", ID, nullable=False),
        sa.Column("check_key", sa.String(length=120), nullable=False),
        sa.Column("check_guid", sa.String(length=64), nullable=True),
        sa.Column("card_id", ID, nullable=False),
        sa.Column("purchase_id", ID, nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", loyalwallet.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", loyalwallet.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["card_id"], ["cards.id"], name=op.f("fk_rkeeper_checks_card_id_cards")),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_rkeeper_checks_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(
            ["purchase_id"], ["purchases.id"], name=op.f("fk_rkeeper_checks_purchase_id_purchases")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rkeeper_checks")),
        sa.UniqueConstraint(
            "merchant_id",
            "check_key",
            "card_id",
            name=op.f("uq_rkeeper_checks_merchant_id_check_key_card_id"),
        ),
    )
    with op.batch_alter_table("rkeeper_checks", schema=None) as batch_op:
        batch_op.create_index("ix_rkeeper_checks_guid", ["merchant_id", "check_guid"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("rkeeper_checks", schema=None) as batch_op:
        batch_op.drop_index("ix_rkeeper_checks_guid")
    op.drop_table("rkeeper_checks")
    op.drop_table("rkeeper_connections")
