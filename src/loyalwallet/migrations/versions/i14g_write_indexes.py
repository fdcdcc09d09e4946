"""Fewer index entries per purchase: the cards' unused (merchant_id, pass_updated_at)
index, the purchases' (merchant_id, created_at) index (a prefix of ix_purchases_analytics)
and the outbox's (status, next_attempt_at) index dropped

Revision ID: i14g_write_indexes
Revises: i14f_cohort_months
Create Date: 2026-12-07 22:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "i14g_write_indexes"
down_revision: str | Sequence[str] | None = "i14f_cohort_months"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every purchase wrote an entry in each of these (issue 14: the PostgreSQL CPU of a
# purchase), and nothing needs them:
# - ix_cards_merchant_updated: no query reads cards by (merchant, pass_updated_at) (Apple's
#   "serials updated since" reads the registrations' change_seq, wallet/apple/updates.py);
#   every card write changed it.
# - ix_purchases_merchant_created: a prefix of ix_purchases_analytics (merchant_id,
#   created_at, card_id, ...), which serves the same ranges and order.
# - ix_outbox_due: the retention's range (status 'done', next_attempt_at) is read through
#   ix_outbox_claim (status, priority, next_attempt_at), lane by lane
#   (outbox/retention.py); the claim and the counts by status use ix_outbox_claim too.
# Dropping indexes changes nothing the previous release does (it names none of them):
# online-safe; on PostgreSQL CONCURRENTLY, so writes go on meanwhile.
online_safe = True

DROPPED = [
    ("ix_cards_merchant_updated", "cards", ["merchant_id", "pass_updated_at"]),
    ("ix_purchases_merchant_created", "purchases", ["merchant_id", "created_at"]),
    ("ix_outbox_due", "outbox", ["status", "next_attempt_at"]),
]


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        for name, table, _columns in DROPPED:
            op.drop_index(name, table_name=table)
        return
    with op.get_context().autocommit_block():
        for name, _table, _columns in DROPPED:
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        for name, table, columns in DROPPED:
            op.create_index(name, table, columns)
        return
    with op.get_context().autocommit_block():
        for name, table, columns in DROPPED:
            op.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {table} ({', '.join(columns)})")
