"""Retention: finished outbox rows are deleted after a while, so the table stops growing.

A delivered row (status "done": a push, a webhook delivery, an SMS) is kept for
LOYALWALLET_OUTBOX_RETENTION_DAYS (7 by default; 0 keeps them forever) so the recent
history can be looked at, then deleted. Dead rows are never deleted here: they stay in
"Failed deliveries" until someone retries them (and they end up delivered). The audit
log is a record of who did what and is not touched.

The delete runs in small batches, each its own short transaction found through the
claim index (status, ...), so it never holds many row locks or a long transaction
while requests and workers write to the same table. A run that deleted rows ends with a
VACUUM of the table (db.vacuum), so its size on disk stays flat even without autovacuum.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, select

from loyalwallet import db
from loyalwallet.config import env
from loyalwallet.outbox.models import BULK, INTERACTIVE, OutboxMessage

RETENTION_DAYS = float(env("OUTBOX_RETENTION_DAYS", "7") or 7)
BATCH = 1000
LANES = (INTERACTIVE, BULK)
MAX_BATCHES = 50  # per run: at most 50,000 rows a minute, and the rest the next minute


def purge_delivered(
    now: dt.datetime | None = None,
    days: float | None = None,
    batch: int = BATCH,
    max_batches: int = MAX_BATCHES,
) -> int:
    """Delete delivered rows older than the retention; returns how many."""
    days = RETENTION_DAYS if days is None else days
    if days <= 0:
        return 0
    cutoff = (now or db.utcnow()) - dt.timedelta(days=days)
    total = 0
    for _ in range(max_batches):
        with db.transaction() as session:
            # A done row's next_attempt_at is before its delivery: the claim index's
            # ranges on (status, priority, next_attempt_at), one per lane (every row is in
            # one), bound the scan; delivered_at decides.
            pick = (
                select(OutboxMessage.id)
                .where(
                    OutboxMessage.status == "done",
                    OutboxMessage.priority.in_(LANES),
                    OutboxMessage.next_attempt_at < cutoff,
                    OutboxMessage.delivered_at < cutoff,
                )
                .limit(batch)
            )
            if not db.is_sqlite():
                pick = pick.with_for_update(skip_locked=True)
            ids = list(session.scalars(pick))
            if ids:
                session.execute(delete(OutboxMessage).where(OutboxMessage.id.in_(ids)))
        total += len(ids)
        if len(ids) < batch:
            break
    if total:
        db.vacuum(OutboxMessage.__table__.name)
    return total
