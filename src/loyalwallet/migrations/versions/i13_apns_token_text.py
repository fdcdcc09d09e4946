"""APNs push tokens as Text: Apple says their length varies (up to 1,000 hex characters taken)

Revision ID: i13_apns_token_text
Revises: 0010_google_saves
Create Date: 2026-12-07 03:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "i13_apns_token_text"
down_revision: str | Sequence[str] | None = "i17_feedback"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Widens the push-token columns to Text (PostgreSQL: no table rewrite from varchar; SQLite
# copies the table): old servers keep working.
online_safe = True


def upgrade() -> None:
    for table in ("apple_registrations", "apple_push_pending"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column("push_token", existing_type=sa.String(length=200), type_=sa.Text())


def downgrade() -> None:
    for table in ("apple_registrations", "apple_push_pending"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column("push_token", existing_type=sa.Text(), type_=sa.String(length=200))
