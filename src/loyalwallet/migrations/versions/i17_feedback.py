"""visit feedback, card links sent to guests, the campaign channel

Revision ID: i17_feedback
Revises: 0010_google_saves
Create Date: 2026-12-07 02:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import loyalwallet.db

revision: str = "i17_feedback"
down_revision: str | Sequence[str] | None = "i18_gift_certificates"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


# Adds tables and a defaulted column (campaigns.channel): old servers keep working.
online_safe = True


def upgrade() -> None:
    op.create_table(
        "feedback",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("merchant_id", ID, nullable=False),
        sa.Column("purchase_id", ID, nullable=False),
        sa.Column("card_id", ID, nullable=False),
        sa.Column("location_id", ID, nullable=True),
        sa.Column("staff_id", ID, nullable=True),
        sa.Column("score", sa.SmallInteger(), nullable=False),
        sa.Column("problems", sa.JSON(), nullable=False),
        sa.Column("comment", sa.String(length=1000), nullable=True),
        sa.Column("edits", sa.SmallInteger(), nullable=False),
        sa.Column("created_at", loyalwallet.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", loyalwallet.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["card_id"], ["cards.id"], name=op.f("fk_feedback_card_id_cards")),
        sa.ForeignKeyConstraint(
            ["location_id"], ["locations.id"], name=op.f("fk_feedback_location_id_locations")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_feedback_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(
            ["purchase_id"], ["purchases.id"], name=op.f("fk_feedback_purchase_id_purchases")
        ),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"], name=op.f("fk_feedback_staff_id_staff")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback")),
        sa.UniqueConstraint("purchase_id", name=op.f("uq_feedback_purchase_id")),
    )
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_feedback_card_id"), ["card_id"], unique=False)
        batch_op.create_index("ix_feedback_merchant_created", ["merchant_id", "created_at"], unique=False)
    op.create_table(
        "card_sends",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("merchant_id", ID, nullable=False),
        sa.Column("card_id", ID, nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("actor_type", sa.String(length=16), nullable=False),
        sa.Column("actor_id", ID, nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", loyalwallet.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["card_id"], ["cards.id"], name=op.f("fk_card_sends_card_id_cards")),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_card_sends_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_card_sends")),
    )
    with op.batch_alter_table("card_sends", schema=None) as batch_op:
        batch_op.create_index("ix_card_sends_card_created", ["card_id", "created_at"], unique=False)
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("channel", sa.String(length=16), server_default="wallet", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_column("channel")
    with op.batch_alter_table("card_sends", schema=None) as batch_op:
        batch_op.drop_index("ix_card_sends_card_created")
    op.drop_table("card_sends")
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.drop_index("ix_feedback_merchant_created")
        batch_op.drop_index(batch_op.f("ix_feedback_card_id"))
    op.drop_table("feedback")
