"""Google objects remember whether a guest saved them (hasUsers) and when we last asked

Revision ID: 0010_google_saves
Revises: 0009_telegram_links
Create Date: 2026-11-24 20:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import loyalwallet.db

revision: str = "0010_google_saves"
down_revision: str | Sequence[str] | None = "0009_telegram_links"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Safe to run while servers of the previous release still serve (rolling upgrade): it
# only adds tables, indexes, and nullable or defaulted columns. See docs/upgrades.md.
online_safe = True


def upgrade() -> None:
    with op.batch_alter_table("google_objects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("has_users", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("saved_at", loyalwallet.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("checked_at", loyalwallet.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_google_objects_unsaved", ["has_users", "checked_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("google_objects", schema=None) as batch_op:
        batch_op.drop_index("ix_google_objects_unsaved")
        batch_op.drop_column("checked_at")
        batch_op.drop_column("saved_at")
        batch_op.drop_column("has_users")
