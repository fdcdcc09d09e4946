"""worker heartbeats: each outbox worker process says it is alive (doctor, /metrics)

Revision ID: i15_worker_heartbeats
Revises: 0010_google_saves
Create Date: 2026-12-07 02:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import loyalwallet.db

revision: str = "i15_worker_heartbeats"
down_revision: str | Sequence[str] | None = "i16_iiko"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Only adds a table: old servers keep working while and after it runs.
online_safe = True


def upgrade() -> None:
    op.create_table(
        "worker_heartbeats",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("started_at", loyalwallet.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("beat_at", loyalwallet.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("handled", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_worker_heartbeats")),
    )


def downgrade() -> None:
    op.drop_table("worker_heartbeats")
