"""Fewer index entries per purchase: the cards' unused (merchant_id, pass_updated_at)
index, the purchases' (merchant_id, created_at) index (a prefix of ix_purchases_analytics)
and the outbox's (status, next_attempt_at) index dropped; the purchases' external id index
and the ledger's expiring-lots index made partial

Revision ID: i14g_write_indexes
Revises: i14f_cohort_months
Create Date: 2026-12-07 22:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
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
# And two indexes hold only the rows their one reader asks for:
# - ix_purchases_merchant_external: purchases looked up by a given external id (GET
#   /purchases?external_id=): those without one (most) are left out.
# - ix_ledger_expiring: the points_expiring trigger reads a merchant's open lots that can
#   expire; spent entries and entries without expiry are left out. `merchant_id IS NOT NULL`
#   (always true) keeps the expiry sweep, which names no merchant, on ix_ledger_open_expiry.
# Dropping or narrowing indexes changes nothing the previous release does (it names none of
# them): online-safe; on PostgreSQL CONCURRENTLY, so writes go on meanwhile.
online_safe = True

DROPPED = [
    ("ix_cards_merchant_updated", "cards", ["merchant_id", "pass_updated_at"]),
    ("ix_purchases_merchant_created", "purchases", ["merchant_id", "created_at"]),
    ("ix_outbox_due", "outbox", ["status", "next_attempt_at"]),
]

# (name, table, columns, the partial index's condition)
NARROWED = [
    (
        "ix_purchases_merchant_external",
        "purchases",
        ["merchant_id", "external_id"],
        "external_id IS NOT NULL",
    ),
    (
        "ix_ledger_expiring",
        "ledger_entries",
        ["merchant_id", "expires_at"],
        "merchant_id IS NOT NULL AND remaining > 0 AND expires_at IS NOT NULL",
    ),
]


def _rebuild(where: bool) -> None:
    """The NARROWED indexes rebuilt with (or without) their condition."""
    if op.get_bind().dialect.name != "postgresql":
        for name, table, columns, cond in NARROWED:
            op.drop_index(name, table_name=table)
            op.create_index(name, table, columns, sqlite_where=sa.text(cond) if where else None)
        return
    with op.get_context().autocommit_block():
        for name, table, columns, cond in NARROWED:
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}_new")
            op.execute(
                f"CREATE INDEX CONCURRENTLY {name}_new ON {table} ({', '.join(columns)})"
                + (f" WHERE {cond}" if where else "")
            )
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
            op.execute(f"ALTER INDEX {name}_new RENAME TO {name}")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        for name, table, _columns in DROPPED:
            op.drop_index(name, table_name=table)
    else:
        with op.get_context().autocommit_block():
            for name, _table, _columns in DROPPED:
                op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
    _rebuild(True)


def downgrade() -> None:
    _rebuild(False)
    if op.get_bind().dialect.name != "postgresql":
        for name, table, columns in DROPPED:
            op.create_index(name, table, columns)
        return
    with op.get_context().autocommit_block():
        for name, table, columns in DROPPED:
            op.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {table} ({', '.join(columns)})")
