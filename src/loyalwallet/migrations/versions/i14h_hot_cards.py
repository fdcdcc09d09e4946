"""A purchase's card update made HOT: purchases indexed by (created_at, merchant_id) for
the analytics snapshot's change finder, and the cards' fillfactor set to 90

Revision ID: i14h_hot_cards
Revises: i14g_write_indexes
Create Date: 2026-12-07 23:20:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "i14h_hot_cards"
down_revision: str | Sequence[str] | None = "i14g_write_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A purchase no longer sets cards.updated_at (cards.book.PURCHASE), so its card UPDATE
# changes no indexed column and PostgreSQL can make it HOT (no entry in the card's indexes).
# The snapshot's change finder (analytics/snapshot.changed_since) finds purchases through
# this index instead: one entry per purchase INSERT, in place of the 7 the card update wrote.
# The fillfactor leaves room on the cards' pages for the new row versions HOT needs; it is
# a table option that applies to pages written from now on (existing pages fill up as they
# are; a VACUUM FULL / pg_repack would apply it to them).
# The previous release neither needs nor is hindered by either: online-safe; on PostgreSQL
# CONCURRENTLY, so purchases go on meanwhile.
online_safe = True


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.create_index("ix_purchases_created", "purchases", ["created_at", "merchant_id"])
        return
    with op.get_context().autocommit_block():
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_purchases_created")  # a failed earlier try
        op.execute("CREATE INDEX CONCURRENTLY ix_purchases_created ON purchases (created_at, merchant_id)")
    op.execute("ALTER TABLE cards SET (fillfactor = 90)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.drop_index("ix_purchases_created", table_name="purchases")
        return
    op.execute("ALTER TABLE cards RESET (fillfactor)")
    with op.get_context().autocommit_block():
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_purchases_created")
