"""Many merchants on one installation: outbox lanes, the trigger schedule's index, a
changed-since index on cards, and a partial index of the open lots' expiry

Revision ID: i19_tenants_scale
Revises: 0010_google_saves
Create Date: 2026-12-07 02:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import loyalwallet.db

revision: str = "i19_tenants_scale"
down_revision: str | Sequence[str] | None = "0010_google_saves"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = "remaining > 0 AND expires_at IS NOT NULL"


# Adds defaulted columns and indexes (built with a short write lock on the outbox, cards and
# ledger tables): safe beside old servers, best run at a quiet hour on a large database.
online_safe = True


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("priority", sa.SmallInteger(), server_default=sa.text("0"), nullable=False)
        )
        batch_op.create_index("ix_outbox_claim", ["status", "priority", "next_attempt_at"], unique=False)
    with op.batch_alter_table("triggers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("next_run_at", loyalwallet.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index("ix_triggers_next_run", ["next_run_at"], unique=False)
    # Every live scheduled trigger is looked at on the next tick, which sets its next time.
    op.execute(
        "UPDATE triggers SET next_run_at = created_at WHERE enabled AND archived_at IS NULL"
        " AND kind IN ('birthday', 'points_expiring', 'lapsed', 'happy_hour')"
    )
    with op.batch_alter_table("cards", schema=None) as batch_op:
        batch_op.create_index("ix_cards_updated", ["updated_at", "merchant_id"], unique=False)
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ledger_open_expiry",
            ["expires_at", "card_id"],
            unique=False,
            postgresql_where=sa.text(OPEN),
            sqlite_where=sa.text(OPEN),
        )


def downgrade() -> None:
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_open_expiry")
    with op.batch_alter_table("cards", schema=None) as batch_op:
        batch_op.drop_index("ix_cards_updated")
    with op.batch_alter_table("triggers", schema=None) as batch_op:
        batch_op.drop_index("ix_triggers_next_run")
        batch_op.drop_column("next_run_at")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_claim")
        batch_op.drop_column("priority")
