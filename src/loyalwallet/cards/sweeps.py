"""Sweeps and checks over every card: expiring points (periodic), and the ledger invariant
(cached balance and stamps == the sum of their entries).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loyalwallet.cards.book import CardBook, lock_card_by_id
from loyalwallet.cards.models import Card, LedgerEntry, StampEntry
from loyalwallet.db import utcnow


def due_cards(now: dt.datetime, batch: int) -> Any:
    """Cards with an open lot expired by `now`, through the partial index of open lots'
    expiry (ix_ledger_open_expiry): the read stays the size of what is due, however long
    the ledger grows. The condition repeats the index's predicate (remaining > 0,
    expires_at not null) so both databases can use it."""
    return (
        select(LedgerEntry.card_id)
        .where(LedgerEntry.remaining > 0, LedgerEntry.expires_at.is_not(None), LedgerEntry.expires_at <= now)
        .distinct()
        .limit(batch)
    )


def expire_points(now: dt.datetime | None = None, batch: int = 200) -> int:
    """Write off expired lots of every card; each card in its own short transaction.
    Returns the number of cards touched."""
    from loyalwallet import db

    now = now or utcnow()
    with db.read() as session:
        card_ids = session.scalars(due_cards(now, batch)).all()
    touched = 0
    for card_id in card_ids:
        with db.transaction() as session:
            card, program = lock_card_by_id(session, card_id)
            book = CardBook(session, card, program, now)
            if book.expire_due():
                book.touch("expiry")
                touched += 1
    return touched


def check_ledger(session: Session) -> list[dict[str, Any]]:
    """Cards whose cached balance or stamps differ from the sum of their entries, or
    whose open lots do not add up to the positive part of the balance."""
    points = (
        select(LedgerEntry.card_id, func.sum(LedgerEntry.points).label("total"))
        .group_by(LedgerEntry.card_id)
        .subquery()
    )
    lots = (
        select(LedgerEntry.card_id, func.sum(LedgerEntry.remaining).label("open"))
        .where(LedgerEntry.remaining > 0)
        .group_by(LedgerEntry.card_id)
        .subquery()
    )
    stamps = (
        select(StampEntry.card_id, func.sum(StampEntry.stamps).label("total"))
        .where(StampEntry.stamp_kind == 1)
        .group_by(StampEntry.card_id)
        .subquery()
    )
    rows = session.execute(
        select(
            Card.id,
            Card.merchant_id,
            Card.code,
            Card.balance,
            Card.stamps,
            func.coalesce(points.c.total, 0),
            func.coalesce(lots.c.open, 0),
            func.coalesce(stamps.c.total, 0),
            Card.kind_stamps,
        )
        .outerjoin(points, points.c.card_id == Card.id)
        .outerjoin(lots, lots.c.card_id == Card.id)
        .outerjoin(stamps, stamps.c.card_id == Card.id)
    ).all()
    # Kinds 2..4 of cards with several stamp kinds: each kind's entries on their own.
    by_kind: dict[int, dict[str, int]] = {}
    for card_id, stamp_kind, kind_total in session.execute(
        select(StampEntry.card_id, StampEntry.stamp_kind, func.sum(StampEntry.stamps))
        .where(StampEntry.stamp_kind != 1)
        .group_by(StampEntry.card_id, StampEntry.stamp_kind)
    ):
        by_kind.setdefault(card_id, {})[str(stamp_kind)] = int(kind_total)
    bad = []
    for card_id, merchant_id, code, balance, card_stamps, total, open_lots, stamp_total, held in rows:
        problems = []
        if balance != total:
            problems.append(f"balance {balance} != entries {total}")
        if open_lots != max(balance, 0):
            problems.append(f"open lots {open_lots} != positive balance {max(balance, 0)}")
        if card_stamps != stamp_total:
            problems.append(f"stamps {card_stamps} != entries {stamp_total}")
        if card_stamps < 0:
            problems.append(f"stamps {card_stamps} < 0")
        problems += _kind_problems(held or {}, by_kind.get(card_id, {}))
        if problems:
            bad.append({"card_id": card_id, "merchant_id": merchant_id, "code": code, "problems": problems})
    return bad


def _kind_problems(held: dict[str, Any], entries: dict[str, int]) -> list[str]:
    """Stamp kinds 2..4: the card's cached count of each kind == the sum of its entries."""
    problems = []
    for kind in sorted(set(held) | set(entries)):
        cached, total = int(held.get(kind, 0)), entries.get(kind, 0)
        if cached != total:
            problems.append(f"stamps of kind {kind} {cached} != entries {total}")
        if cached < 0:
            problems.append(f"stamps of kind {kind} {cached} < 0")
    return problems
