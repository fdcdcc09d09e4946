"""Retention of the per-card outcomes of batched Google messages (google_message_sends).

A campaign or trigger chunk records one row per card (wallet.google.messages); they are
kept as long as the outbox keeps delivered rows (LOYALWALLET_OUTBOX_RETENTION_DAYS, 7 days
by default; 0 keeps them forever), then deleted in small batches by the periodic job
`google-sends-retention` (wiring.py), except the rows of campaigns still open: scheduled
or sending, or finished less than the retention ago. A trigger's rows go by age alone (its
firings, kept, are what stops a second message). Once its rows are gone, an old
campaign's Google counts read 0, as they did when each card was an outbox row that the
outbox retention deleted.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import or_, select

from loyalwallet import db
from loyalwallet.campaigns.models import Campaign
from loyalwallet.outbox import retention
from loyalwallet.wallet.google.messages import purge_sends

BATCH = 1000
MAX_BATCHES = 50  # per run: at most 50,000 rows, the rest the next run


def purge_google_sends(
    now: dt.datetime | None = None,
    days: float | None = None,
    batch: int = BATCH,
    max_batches: int = MAX_BATCHES,
) -> int:
    """Delete the outcomes older than the retention, but not an open campaign's; returns how many."""
    days = retention.RETENTION_DAYS if days is None else days
    if days <= 0:
        return 0
    cutoff = (now or db.utcnow()) - dt.timedelta(days=days)
    with db.read() as session:
        open_ids = session.scalars(
            select(Campaign.id).where(
                or_(Campaign.status.in_(("scheduled", "sending")), Campaign.finished_at >= cutoff)
            )
        ).all()
    keep = [f"campaign-{i}" for i in open_ids]
    return purge_sends(cutoff, keep, batch, max_batches)
