"""A snapshot of the cards' figures for "guests now", RFM and cohort sizes.

These read every card of a merchant (a million rows for a big one), so the dashboard
reads two small tables instead, which the worker keeps up to date.

What changed, not everyone: the periodic job (`refresh_changed`) keeps a changed-since
watermark and asks which merchants had a card created or changed since then: the cards'
(updated_at, merchant_id) index for every card write but a purchase's, and the purchases'
(created_at, merchant_id) index for purchases (a purchase leaves the card's updated_at
alone, so that its card UPDATE changes no indexed column and is HOT: cards.book.PURCHASE).
Only those merchants are recomputed, each once per run, in bounded batches. An idle installation costs the same few statements a minute whether it holds
ten merchants or ten thousand. The snapshot does not go stale by itself: its "days since
the last purchase" were counted at the time it was taken and are moved on by the days
passed since when it is read (`cells`). When the job has not run for a while (no worker)
or a merchant has no snapshot yet, the dashboard computes the figures live instead.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import delete, func, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from loyalwallet import db
from loyalwallet.analytics.models import CohortSize, GuestCell, RollupState
from loyalwallet.analytics.queries import Filters, local_month, not_merged, recency_days
from loyalwallet.analytics.rules import Cell
from loyalwallet.cards.models import Card
from loyalwallet.checkout.models import Purchase
from loyalwallet.config import env
from loyalwallet.merchants.models import Merchant

SNAPSHOT_SECONDS = float(env("ANALYTICS_SNAPSHOT_SECONDS", "300") or 300)
WATERMARK = "snapshot-changes"
# Changes younger than this are left to the next run: a card's updated_at (a purchase's
# created_at) is set before its transaction commits, so a younger change may not be visible yet.
SETTLE = dt.timedelta(seconds=30)
# Index rows read per run and source (then the watermark moves to where the reading stopped).
SCAN = 20_000
MERCHANTS_PER_RUN = 200
# A snapshot is shown while the job has looked for changes within this long.
STALE = dt.timedelta(minutes=15)
DAY = dt.timedelta(days=1)


def _name(merchant_id: int) -> str:
    return f"snapshot:{merchant_id}"


def refresh(session: Session, merchant_id: int, tz: str, now: dt.datetime) -> None:
    """Recompute one merchant's snapshot in the caller's transaction."""
    session.execute(delete(GuestCell).where(GuestCell.merchant_id == merchant_id))
    session.execute(delete(CohortSize).where(CohortSize.merchant_id == merchant_id))
    recency = func.coalesce(recency_days(session, now), -1)
    cells = (
        select(
            literal(merchant_id), Card.program_id, recency, Card.visits, func.count(), func.sum(Card.spend)
        )
        .where(Card.merchant_id == merchant_id, Card.customer_id.is_not(None))
        .group_by(Card.program_id, recency, Card.visits)
    )
    session.execute(
        GuestCell.__table__.insert().from_select(
            ["merchant_id", "program_id", "recency", "visits", "guests", "spend"], cells
        )
    )
    month = local_month(session, Card.created_at, tz)
    sizes = (
        select(literal(merchant_id), Card.program_id, month, func.count())
        .where(Card.merchant_id == merchant_id, not_merged())
        .group_by(Card.program_id, month)
    )
    session.execute(
        CohortSize.__table__.insert().from_select(["merchant_id", "program_id", "month", "cards"], sizes)
    )
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = insert(RollupState).values(name=_name(merchant_id), value=0, updated_at=now)
    session.execute(stmt.on_conflict_do_update(index_elements=["name"], set_={"updated_at": now}))


def refresh_all(now: dt.datetime | None = None, max_age: float = SNAPSHOT_SECONDS) -> int:
    """Refresh every merchant whose snapshot is older than `max_age`; returns how many.
    A full pass (tests, one-off catch-up); the periodic job is `refresh_changed`."""
    now = now or db.utcnow()
    with db.read() as session:
        merchants = session.execute(select(Merchant.id, Merchant.timezone).order_by(Merchant.id)).all()
    done = 0
    for merchant_id, tz in merchants:
        with db.transaction() as session:
            state = session.scalar(
                db.for_update(select(RollupState).where(RollupState.name == _name(merchant_id)))
            )
            if state is not None and state.updated_at > now - dt.timedelta(seconds=max_age * 0.9):
                continue
            refresh(session, merchant_id, tz, now)
            done += 1
    return done


def _watermark(session: Session, now: dt.datetime) -> RollupState:
    stmt = db.for_update(select(RollupState).where(RollupState.name == WATERMARK))
    state = session.scalar(stmt)
    if state is None:
        insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        # value: 0 until the first pass over everything has been made.
        session.execute(
            insert(RollupState)
            .values(name=WATERMARK, value=0, updated_at=EPOCH)
            .on_conflict_do_nothing(index_elements=["name"])
        )
        state = session.scalar(stmt)
    assert state is not None
    return state


EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


Change = tuple[dt.datetime, int]  # (when, merchant_id)


def _changes(
    session: Session, at: Any, merchant: Any, since: dt.datetime, until: dt.datetime, scan: int
) -> tuple[list[Change], dt.datetime]:
    """One source's changes in (since, until], at most `scan` index rows read (plus one
    instant's merchants), and the time up to which they are all there."""
    rows: list[Change] = [
        (a, m)
        for a, m in session.execute(
            select(at, merchant).where(at > since, at <= until).order_by(at).limit(scan)
        ).all()
    ]
    if len(rows) < scan:
        return rows, until
    last = rows[-1][0]
    if rows[0][0] == last:
        # A whole scan of one instant (a bulk change): take that instant entirely.
        rows += [(last, m) for m in session.scalars(select(merchant).where(at == last).distinct())]
        return rows, last
    return rows, last - dt.timedelta(microseconds=1)  # the changes at `last` the limit cut off


def changed_since(
    session: Session,
    since: dt.datetime,
    until: dt.datetime,
    scan: int = SCAN,
    merchants: int = MERCHANTS_PER_RUN,
) -> tuple[list[int], dt.datetime]:
    """Merchants with a card changed in (since, until], at most `merchants` of them and
    `scan` index rows read per source; and how far that covered (the next watermark).
    The sources: the cards' updated_at (every card write but a purchase's) and the
    purchases' created_at (a purchase's card write)."""
    cards, reached = _changes(session, Card.updated_at, Card.merchant_id, since, until, scan)
    bought, bought_reached = _changes(session, Purchase.created_at, Purchase.merchant_id, since, until, scan)
    reached = min(reached, bought_reached)  # complete up to there in both
    found: dict[int, None] = {}
    for at, merchant_id in sorted(c for c in cards + bought if c[0] <= reached):
        if merchant_id not in found and len(found) >= merchants:
            reached = at - dt.timedelta(microseconds=1)  # this change is the next run's
            break
        found[merchant_id] = None
    return list(found), max(reached, since)


def refresh_changed(now: dt.datetime | None = None, settle: dt.timedelta = SETTLE) -> int:
    """The periodic job: recompute the snapshots of the merchants whose cards changed
    since the last run, each in its own short transaction; returns how many. The
    watermark moves only after they are done (a crash repeats them, loses none)."""
    now = now or db.utcnow()
    with db.transaction() as session:
        since = _watermark(session, now).updated_at
        found, reached = changed_since(session, since, now - settle)
        zones = dict(
            session.execute(select(Merchant.id, Merchant.timezone).where(Merchant.id.in_(found))).all()
        )
    for merchant_id in found:
        with db.transaction() as session:
            _mark(session, _name(merchant_id), EPOCH, update=False)
            session.scalar(db.for_update(select(RollupState).where(RollupState.name == _name(merchant_id))))
            refresh(session, merchant_id, zones.get(merchant_id, "UTC"), now)
    with db.transaction() as session:
        state = _watermark(session, now)
        if state.updated_at == since:  # nobody else moved it meanwhile
            state.updated_at = max(reached, since)
        # When the job last looked, for `as_of`: the dashboard trusts a snapshot while
        # the job keeps running.
        _mark(session, "snapshot-seen", now)
    return len(found)


def _mark(session: Session, name: str, at: dt.datetime, update: bool = True) -> None:
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = insert(RollupState).values(name=name, value=0, updated_at=at)
    if update:
        session.execute(stmt.on_conflict_do_update(index_elements=["name"], set_={"updated_at": at}))
    else:
        session.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))


def as_of(session: Session, merchant_id: int, now: dt.datetime) -> dt.datetime | None:
    """When the merchant's snapshot was taken, if it can be shown: it exists, and either
    it is recent or the job that keeps it up to date ran lately."""
    taken = session.scalar(select(RollupState.updated_at).where(RollupState.name == _name(merchant_id)))
    if taken is None:
        return None
    if taken >= now - dt.timedelta(seconds=3 * SNAPSHOT_SECONDS):
        return taken
    seen = session.scalar(select(RollupState.updated_at).where(RollupState.name == "snapshot-seen"))
    return taken if seen is not None and seen >= now - STALE else None


# A merchant with at most this many cards whose cards changed after its snapshot gets
# "guests now" read live from the cards (a café's dashboard right after a sale); a
# bigger one is shown the snapshot with its time.
LIVE_CARDS = int(env("ANALYTICS_LIVE_CARDS", "20000") or 20000)


def outdated(session: Session, merchant_id: int, taken: dt.datetime) -> bool:
    """Whether a card of the merchant changed after the snapshot (ranges of the cards'
    (updated_at, merchant_id) and the purchases' (merchant_id, created_at) indexes: only
    the changes since `taken` are read) and the
    merchant is small enough to be read live."""
    changed = session.scalar(
        select(Card.id).where(Card.updated_at > taken, Card.merchant_id == merchant_id).limit(1)
    )
    if changed is None:  # a purchase (ix_purchases_analytics: merchant_id, created_at)
        changed = session.scalar(
            select(Purchase.id)
            .where(Purchase.merchant_id == merchant_id, Purchase.created_at > taken)
            .limit(1)
        )
    if changed is None:
        return False
    cards = session.scalar(select(func.sum(CohortSize.cards)).where(CohortSize.merchant_id == merchant_id))
    return int(cards or 0) <= LIVE_CARDS


def cells(
    session: Session, f: Filters, taken: dt.datetime | None = None, now: dt.datetime | None = None
) -> list[Cell]:
    """The snapshot's cells; days since the last purchase moved on by the whole days
    passed from `taken` to `now`."""
    shift = (now - taken) // DAY if taken is not None and now is not None and now > taken else 0
    stmt = select(
        GuestCell.recency, GuestCell.visits, func.sum(GuestCell.guests), func.sum(GuestCell.spend)
    ).where(GuestCell.merchant_id == f.merchant_id)
    if f.program_id is not None:
        stmt = stmt.where(GuestCell.program_id == f.program_id)
    rows = session.execute(stmt.group_by(GuestCell.recency, GuestCell.visits)).all()
    return [Cell(None if r < 0 else int(r) + shift, int(v), int(n), int(s or 0)) for r, v, n, s in rows]


def cohort_sizes(session: Session, f: Filters, first: str, last: str) -> dict[str, int]:
    stmt = select(CohortSize.month, func.sum(CohortSize.cards)).where(
        CohortSize.merchant_id == f.merchant_id, CohortSize.month >= first, CohortSize.month <= last
    )
    if f.program_id is not None:
        stmt = stmt.where(CohortSize.program_id == f.program_id)
    return {m: int(n) for m, n in session.execute(stmt.group_by(CohortSize.month)).all()}
