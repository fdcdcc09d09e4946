"""What became of the messages after they left: SMS delivery reports (SMS.ru's sms_id,
callback and sms/status), late e-mail bounces (a per-message bounce token); a guest bot
whose token Telegram rejects is marked broken; cards remember the location that issued them

Revision ID: i17c_delivery_reports
Revises: i16c_rkeeper
Create Date: 2026-12-07 12:50:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import loyalwallet.db

revision: str = "i17c_delivery_reports"
down_revision: str | Sequence[str] | None = "i16c_rkeeper"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = loyalwallet.db.UTCDateTime(timezone=True)

# A new table and nullable columns: old servers keep working.
online_safe = True


def upgrade() -> None:
    op.create_table(
        "message_deliveries",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("merchant_id", ID, nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("ref", sa.String(length=64), nullable=False),
        sa.Column("card_send_id", ID, nullable=True),
        sa.Column("campaign_id", ID, nullable=True),
        sa.Column("recipient_id", ID, nullable=True),
        sa.Column("address_hash", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=True),
        sa.Column("polls", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_poll_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_message_deliveries_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_deliveries")),
        sa.UniqueConstraint("channel", "ref", name=op.f("uq_message_deliveries_channel_ref")),
    )
    op.create_index("ix_message_deliveries_poll", "message_deliveries", ["next_poll_at"])
    op.create_index("ix_message_deliveries_campaign", "message_deliveries", ["campaign_id", "status"])
    op.create_index("ix_message_deliveries_send", "message_deliveries", ["card_send_id"])
    with op.batch_alter_table("telegram_bots") as batch:
        batch.add_column(sa.Column("broken_at", TS, nullable=True))
        batch.add_column(sa.Column("broken_reason", sa.String(length=200), nullable=True))
    with op.batch_alter_table("cards") as batch:
        batch.add_column(sa.Column("issued_location_id", ID, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cards") as batch:
        batch.drop_column("issued_location_id")
    with op.batch_alter_table("telegram_bots") as batch:
        batch.drop_column("broken_reason")
        batch.drop_column("broken_at")
    op.drop_index("ix_message_deliveries_send", table_name="message_deliveries")
    op.drop_index("ix_message_deliveries_campaign", table_name="message_deliveries")
    op.drop_index("ix_message_deliveries_poll", table_name="message_deliveries")
    op.drop_table("message_deliveries")
