"""A periodic snapshot of the cards' figures for "guests now", RFM and cohort sizes.

These read every card of a merchant (a million rows for a big one); the figures move
slowly (days since a visit), so the worker recomputes them every SNAPSHOT_SECONDS into
two small tables, and the dashboard reads those. When a merchant has no fresh snapshot
(a new install, a stopped worker) the dashboard computes them live instead.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, func, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from loyalwallet import db
from loyalwallet.analytics.models import CohortSize, GuestCell, RollupState
from loyalwallet.analytics.queries import Filters, local_month, recency_days
from loyalwallet.analytics.rules import Cell
from loyalwallet.cards.models import Card
from loyalwallet.config import env
from loyalwallet.merchants.models import Merchant

SNAPSHOT_SECONDS = float(env("ANALYTICS_SNAPSHOT_SECONDS", "300") or 300)


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
        .where(Card.merchant_id == merchant_id)
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
    Each merchant in its own transaction, its state row locked, so workers share it."""
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


def as_of(session: Session, merchant_id: int, now: dt.datetime) -> dt.datetime | None:
    """When the merchant's snapshot was taken, if it is fresh enough to show."""
    taken = session.scalar(select(RollupState.updated_at).where(RollupState.name == _name(merchant_id)))
    if taken is None or taken < now - dt.timedelta(seconds=3 * SNAPSHOT_SECONDS):
        return None
    return taken


def cells(session: Session, f: Filters) -> list[Cell]:
    stmt = select(
        GuestCell.recency, GuestCell.visits, func.sum(GuestCell.guests), func.sum(GuestCell.spend)
    ).where(GuestCell.merchant_id == f.merchant_id)
    if f.program_id is not None:
        stmt = stmt.where(GuestCell.program_id == f.program_id)
    rows = session.execute(stmt.group_by(GuestCell.recency, GuestCell.visits)).all()
    return [Cell(None if r < 0 else int(r), int(v), int(n), int(s or 0)) for r, v, n, s in rows]


def cohort_sizes(session: Session, f: Filters, first: str, last: str) -> dict[str, int]:
    stmt = select(CohortSize.month, func.sum(CohortSize.cards)).where(
        CohortSize.merchant_id == f.merchant_id, CohortSize.month >= first, CohortSize.month <= last
    )
    if f.program_id is not None:
        stmt = stmt.where(CohortSize.program_id == f.program_id)
    return {m: int(n) for m, n in session.execute(stmt.group_by(CohortSize.month)).all()}
