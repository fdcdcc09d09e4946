"""archived triggers (deleting a trigger keeps its history)

Revision ID: 0008_trigger_archive
Revises: 0007_campaigns
Create Date: 2026-11-24 19:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import loyalwallet.db

revision: str = "0008_trigger_archive"
down_revision: str | Sequence[str] | None = "0007_campaigns"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Safe to run while servers of the previous release still serve (rolling upgrade): it
# only adds tables, indexes, and nullable or defaulted columns. See docs/upgrades.md.
online_safe = True


def upgrade() -> None:
    with op.batch_alter_table("triggers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("archived_at", loyalwallet.db.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("triggers", schema=None) as batch_op:
        batch_op.drop_column("archived_at")
