"""stamp kinds: several stamp kinds on one card (issue 18 point 3)

Revision ID: i18c_stamp_kinds
Revises: i17c_delivery_reports
Create Date: 2026-12-07 12:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "i18c_stamp_kinds"
down_revision: str | Sequence[str] | None = "i17c_delivery_reports"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Only nullable columns and one with a constant default (PostgreSQL 11+ adds it without
# rewriting the table): servers of the previous release keep working.
online_safe = True


def upgrade() -> None:
    with op.batch_alter_table("stamp_entries", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("stamp_kind", sa.Integer(), server_default=sa.text("1"), nullable=False)
        )
    with op.batch_alter_table("cards", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind_stamps", sa.JSON(), nullable=True))
    with op.batch_alter_table("purchases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind_stamps", sa.JSON(), nullable=True))
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind_stamps", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.drop_column("kind_stamps")
    with op.batch_alter_table("purchases", schema=None) as batch_op:
        batch_op.drop_column("kind_stamps")
    with op.batch_alter_table("cards", schema=None) as batch_op:
        batch_op.drop_column("kind_stamps")
    with op.batch_alter_table("stamp_entries", schema=None) as batch_op:
        batch_op.drop_column("stamp_kind")
