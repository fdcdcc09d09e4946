"""Merged invitation cards in the guests' purchase days: an index to find the card an
invitation card was merged into; the merged cards' cached first/last purchase cleared
(their visits moved to the kept card); the purchase days folded again where merges exist

Revision ID: i14e_merged_cards
Revises: i14e_sends_retention
Create Date: 2026-12-07 15:45:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "i14e_merged_cards"
down_revision: str | Sequence[str] | None = "i14e_sends_retention"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHERE = "invitation_card_id IS NOT NULL"
MERGED = "SELECT invitation_card_id FROM joins WHERE invitation_card_id IS NOT NULL AND card_id <> invitation_card_id"

# An index and small updates: old servers keep working (they fold a merged card's
# purchases as its own until the new ones run).
online_safe = True


def upgrade() -> None:
    with op.batch_alter_table("joins", schema=None) as batch_op:
        batch_op.create_index(
            "ix_joins_invitation_card",
            ["invitation_card_id", "card_id"],
            unique=False,
            postgresql_where=sa.text(WHERE),
            sqlite_where=sa.text(WHERE),
        )
    # A merged card's visits and spend went to the kept card; so do its first and last
    # purchase (the dashboard counted the merged card as a buyer of its own).
    op.execute(
        f"UPDATE cards SET first_purchase_at = NULL, last_visit_at = NULL WHERE visits = 0 AND id IN ({MERGED})"
    )
    # Purchase days folded before merges were understood: fold them again (a backfill,
    # resumable, shown as "being prepared"), only where a merge exists.
    bind = op.get_bind()
    if bind.execute(sa.text(f"{MERGED} LIMIT 1")).first() is not None:
        op.execute("DELETE FROM analytics_guest_location_days")
        op.execute("DELETE FROM analytics_guest_days")
        op.execute("DELETE FROM analytics_state WHERE name LIKE 'guest-days%'")


def downgrade() -> None:
    with op.batch_alter_table("joins", schema=None) as batch_op:
        batch_op.drop_index("ix_joins_invitation_card")
