"""google_message_sends.created_at indexed: the retention deletes old rows in batches

Revision ID: i14e_sends_retention
Revises: i17d_suppression
Create Date: 2026-12-07 16:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "i14e_sends_retention"
down_revision: str | Sequence[str] | None = "i17d_suppression"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Adds an index (a short write lock on google_message_sends): safe beside old servers.
online_safe = True


def upgrade() -> None:
    with op.batch_alter_table("google_message_sends", schema=None) as batch_op:
        batch_op.create_index("ix_google_message_sends_created", ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("google_message_sends", schema=None) as batch_op:
        batch_op.drop_index("ix_google_message_sends_created")
