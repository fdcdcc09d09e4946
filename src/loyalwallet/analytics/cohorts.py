"""analytics_cohort_months: the retention table's counts, kept beside the card months.

A row (merchant, program, cohort month, month) holds how many cards of that cohort bought
in that month: the rows of analytics_card_months counted. Counting 10M card months on
each page load took 2-3 s; the counts are at most 12 x 12 rows per program.

They move with the card months, in the same transaction and under the same lock (the
rollup's watermark row):
- the fold (rollup.step) adds one for every card month it inserts that was not there
  (ON CONFLICT DO NOTHING ... RETURNING: a purchase folded twice, or a second purchase of
  the card in that month, adds nothing);
- a merge of an invitation card into a guest's kept card (enrollment/invitations.py)
  moves its card months to the kept card (`merge_cards`): one guest, in the kept card's
  cohort;
- an existing database is filled card range by card range (`fill_step`, resumable): the
  cursor (`cohort-months`, in analytics_state) is the last card whose card months are
  counted; the fold counts a new card month only when its card is at or below it, the
  fill counts the rest when it gets there. At the end the cursor becomes ALL and the
  dashboard reads the counts (until then it counts the card months, as before).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from loyalwallet import db
from loyalwallet.analytics.activity import dialect_insert, state_row
from loyalwallet.analytics.models import CardMonth, CohortMonth, RollupState
from loyalwallet.analytics.queries import Filters, local_month
from loyalwallet.cards.models import Card
from loyalwallet.merchants.models import Merchant

CURSOR = "cohort-months"
ALL = 2**62  # the cursor once everything is counted: every card month is counted as it comes
CARDS_PER_STEP = 100_000
# False: the dashboard counts the card months instead (the bench measures both ways).
READ = True

Key = tuple[int, int, str, str]  # merchant, program, cohort month, month


def cursor(session: Session, lock: bool = False) -> RollupState:
    """The fill's cursor (a database made before the counts: filled from the first card)."""
    return state_row(session, CURSOR, lock)


def add(session: Session, counts: Counter[Key]) -> None:
    """Add these counts (negative to take away)."""
    values = [
        {"merchant_id": m, "program_id": p, "cohort_month": c, "month": mo, "cards": n}
        for (m, p, c, mo), n in sorted(counts.items())
        if n
    ]
    if not values:
        return
    stmt = dialect_insert(session)(CohortMonth.__table__)
    stmt = stmt.on_conflict_do_update(
        index_elements=["merchant_id", "program_id", "cohort_month", "month"],
        set_={"cards": CohortMonth.__table__.c.cards + stmt.excluded.cards},
    )
    session.connection().execute(stmt, values)


def insert_counted(session: Session, pairs: Select[Any], counted_upto: int) -> None:
    """Insert the card months `pairs` (card, month, merchant, program, cohort month) that
    are new, and count those of cards at or below `counted_upto` (the cursor). PostgreSQL
    does both in one statement."""
    ins = (
        dialect_insert(session)(CardMonth)
        .from_select(["card_id", "month", "merchant_id", "program_id", "cohort_month"], pairs)
        .on_conflict_do_nothing(index_elements=["card_id", "month"])
        .returning(
            CardMonth.card_id,
            CardMonth.merchant_id,
            CardMonth.program_id,
            CardMonth.cohort_month,
            CardMonth.month,
        )
    )
    if session.get_bind().dialect.name != "postgresql":
        rows = session.execute(ins).all()
        add(session, Counter((m, p, c, mo) for card, m, p, c, mo in rows if card <= counted_upto))
        return
    new = ins.cte("new")
    keys = [new.c.merchant_id, new.c.program_id, new.c.cohort_month, new.c.month]
    counted = select(*keys, func.count()).where(new.c.card_id <= counted_upto).group_by(*keys)
    stmt = postgresql.insert(CohortMonth).from_select(
        ["merchant_id", "program_id", "cohort_month", "month", "cards"], counted
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["merchant_id", "program_id", "cohort_month", "month"],
        set_={"cards": CohortMonth.cards + stmt.excluded.cards},
    )
    session.execute(stmt)


def fill_step(session: Session, cards: int = CARDS_PER_STEP) -> int:
    """Count the card months of the next range of cards (in the caller's transaction,
    which holds the rollup's watermark lock); returns 0 when everything is counted."""
    state = cursor(session, lock=True)
    lo = state.value
    if lo >= ALL:
        return 0
    top = session.scalar(select(func.max(CardMonth.card_id))) or 0
    hi = lo + cards
    keys = [CardMonth.merchant_id, CardMonth.program_id, CardMonth.cohort_month, CardMonth.month]
    counted = (
        select(*keys, func.count()).where(CardMonth.card_id > lo, CardMonth.card_id <= hi).group_by(*keys)
    )
    stmt = dialect_insert(session)(CohortMonth).from_select(
        ["merchant_id", "program_id", "cohort_month", "month", "cards"], counted
    )
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["merchant_id", "program_id", "cohort_month", "month"],
            set_={"cards": CohortMonth.cards + stmt.excluded.cards},
        )
    )
    state.value = ALL if hi >= top else hi
    state.updated_at = db.utcnow()
    return 1


def progress(session: Session) -> float | None:
    """How far the fill is (0..1), None when done."""
    value = session.scalar(select(RollupState.value).where(RollupState.name == CURSOR))
    if value is not None and value >= ALL:
        return None
    top = session.scalar(select(func.max(CardMonth.card_id))) or 0
    return min(0.99, (value or 0) / top) if top else 0.99


def merge_cards(session: Session, source: int, target: int) -> None:
    """The invitation card `source` was merged into `target` (this transaction): its card
    months become the kept card's (in the kept card's cohort), the counts follow. The
    caller (rollup.merge_cards) holds the rollup's watermark lock, so no fold step runs
    between."""
    upto = cursor(session).value
    rows = session.execute(
        select(CardMonth.merchant_id, CardMonth.program_id, CardMonth.cohort_month, CardMonth.month).where(
            CardMonth.card_id == source
        )
    ).all()
    if not rows:
        return
    counts: Counter[Key] = Counter()
    if source <= upto:
        counts.update((int(m), int(p), str(c), str(mo)) for m, p, c, mo in rows)
        counts = Counter({k: -n for k, n in counts.items()})
    session.execute(CardMonth.__table__.delete().where(CardMonth.card_id == source))
    tz = session.scalar(
        select(Merchant.timezone).join(Card, Card.merchant_id == Merchant.id).where(Card.id == target)
    )
    program, cohort = session.execute(
        select(Card.program_id, local_month(session, Card.created_at, tz or "UTC")).where(Card.id == target)
    ).one()
    ins = dialect_insert(session)(CardMonth).on_conflict_do_nothing(index_elements=["card_id", "month"])
    for m, _p, _c, mo in rows:
        row = {
            "card_id": target,
            "month": mo,
            "merchant_id": m,
            "program_id": program,
            "cohort_month": cohort,
        }
        new = session.execute(ins.values(**row).returning(CardMonth.month)).first() is not None
        if new and target <= upto:
            counts[(int(m), int(program), str(cohort), str(mo))] += 1
    add(session, counts)


def activity(session: Session, f: Filters, first: str, last: str) -> list[tuple[str, str, int]] | None:
    """(cohort month, month, cards) of the cohorts first..last up to month `last`; None
    while the counts are being filled (then the card months are counted)."""
    value = session.scalar(select(RollupState.value).where(RollupState.name == CURSOR))
    if not READ or value is None or value < ALL:
        return None
    stmt = select(CohortMonth.cohort_month, CohortMonth.month, func.sum(CohortMonth.cards)).where(
        CohortMonth.merchant_id == f.merchant_id,
        CohortMonth.cohort_month >= first,
        CohortMonth.cohort_month <= last,
        CohortMonth.month <= last,
    )
    if f.program_id is not None:
        stmt = stmt.where(CohortMonth.program_id == f.program_id)
    rows = session.execute(stmt.group_by(CohortMonth.cohort_month, CohortMonth.month)).all()
    return [(c, m, int(n)) for c, m, n in rows if n]
