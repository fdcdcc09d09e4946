"""Login attempts remember the known device they came from (the signed device cookie), so
wrong passwords from elsewhere lock a login without locking out its owner's devices

Revision ID: i13b_login_device
Revises: i13_apns_token_text
Create Date: 2026-12-07 05:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "i13b_login_device"
down_revision: str | Sequence[str] | None = "i13_apns_token_text"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# A new nullable column: old servers neither read nor write it.
online_safe = True


def upgrade() -> None:
    with op.batch_alter_table("login_attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("device", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("login_attempts", schema=None) as batch_op:
        batch_op.drop_column("device")
