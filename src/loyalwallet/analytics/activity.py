"""analytics_guest_days: kept from the purchases, read for buyers and repeat buyers.

The fold has its own watermark in analytics_state (`guest-days`: every purchase id at or
below it is in the bitmaps). It moves in one of two ways, each step its own transaction
that writes the rows and moves its state together, under the watermark row's lock:

- incremental: the settled purchases above the watermark, a bounded range of ids, are
  grouped by card and day and merged into their cards' rows (as rollup.step does for
  the other rollups);
- backfill, when the backlog is large (an existing database after the upgrade, or a
  worker that was off for long): the target (`guest-days-target`) is fixed at the
  highest settled id, and the cards are walked in id order (`guest-days-cards`, the last
  card done), each step folding all the purchases up to the target of a range of cards.
  At the end the watermark jumps to the target. Killing it anywhere and starting again
  resumes at the last committed card range; merging is saturating addition of per-day
  counts, so the result is the same as one uninterrupted pass.

Until the backfill is done, the dashboard counts buyers from the purchases, as before,
and says how far the preparation is (`progress`).

A merged invitation card (enrollment/invitations.py: its points, visits and first/last
purchase move to the guest's kept card) is one guest with the kept card: its purchases
are folded into the kept card's rows wherever they are folded (`owners`), it has no rows
of its own, and the merge itself moves what was folded already (`merge_cards`).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import bindparam, case, delete, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from loyalwallet import db
from loyalwallet.analytics import activity_rules as rules
from loyalwallet.analytics.models import GuestDays, GuestLocationDays, RollupState
from loyalwallet.analytics.queries import Filters, local_day
from loyalwallet.cards.models import Card
from loyalwallet.checkout.models import Purchase
from loyalwallet.config import env
from loyalwallet.enrollment.models import Join
from loyalwallet.merchants.models import Merchant

WATERMARK = "guest-days"
TARGET = "guest-days-target"
CURSOR = "guest-days-cards"
SETTLE = dt.timedelta(seconds=60)
# A backlog of more purchase ids than this is folded card by card (a backfill).
BACKFILL_OVER = 200_000
CARDS_PER_STEP = 20_000
IDS_PER_STEP = 50_000
FOLD_WORK_MEM = "256MB"  # per backfill step on PostgreSQL (its sorts and groupings)
# More unfolded purchases than this at a merchant: buyers are counted from the purchases.
TAIL_MAX = 20_000
# "0": the dashboard does not read the bitmaps (counts buyers from the purchases, as
# before; the bench measures both ways in one run). The worker keeps them either way.
READ = (env("ANALYTICS_GUEST_DAYS", "1") or "1") != "0"

Row = tuple[int, int, int, int, str, int]  # card, merchant, program, location, local day, purchases


def dialect_insert(session: Session) -> Any:
    """INSERT with ON CONFLICT for the session's database (PostgreSQL or SQLite)."""
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def state_row(session: Session, name: str, lock: bool = False) -> RollupState:
    """The analytics_state row `name` (a watermark or a cursor), made at 0 when missing."""
    stmt = select(RollupState).where(RollupState.name == name)
    if lock:
        stmt = db.for_update(stmt)
    state = session.scalar(stmt)
    if state is None:
        session.execute(
            dialect_insert(session)(RollupState)
            .values(name=name, value=0, updated_at=db.utcnow())
            .on_conflict_do_nothing(index_elements=["name"])
        )
        state = session.scalar(stmt)
    assert state is not None
    return state


def _values(session: Session, *names: str) -> dict[str, int]:
    rows = session.execute(select(RollupState.name, RollupState.value).where(RollupState.name.in_(names)))
    return {**dict.fromkeys(names, 0), **{n: int(v) for n, v in rows}}


# --- folding -------------------------------------------------------------------------------


def owners(session: Session, cards: Iterable[int]) -> dict[int, int]:
    """The kept card of each of these cards that was merged into another (the rest are
    their own)."""
    ids = sorted(set(cards))
    out: dict[int, int] = {}
    for i in range(0, len(ids), 5_000):
        out.update(
            (int(src or 0), int(dst))
            for src, dst in session.execute(
                select(Join.invitation_card_id, func.max(Join.card_id))
                .where(
                    Join.invitation_card_id.in_(ids[i : i + 5_000]),
                    Join.card_id != Join.invitation_card_id,
                )
                .group_by(Join.invitation_card_id)
            )
        )
    return out


def _merged_into(lo: int, hi: int) -> Any:
    """The merged cards whose kept card is in (lo, hi]."""
    return select(Join.invitation_card_id).where(
        Join.invitation_card_id.is_not(None),
        Join.card_id != Join.invitation_card_id,
        Join.card_id > lo,
        Join.card_id <= hi,
    )


def _grouped(session: Session, where: Callable[[], list[ColumnElement[bool]]]) -> list[Row]:
    """(card, merchant, program, location (0: none), local day, purchases) of the
    purchases matching `where`, one query per merchant (the local day is the merchant's)."""
    merchants = session.execute(
        select(Purchase.merchant_id, Merchant.timezone)
        .distinct()
        .join(Merchant, Merchant.id == Purchase.merchant_id)
        .where(*where())
    ).all()
    out: list[Row] = []
    location = func.coalesce(Purchase.location_id, 0)
    for merchant_id, tz in merchants:
        day = local_day(session, Purchase.created_at, tz)
        # A card's purchases are all of its program (Purchase.program_id, no join).
        rows = session.execute(
            select(Purchase.card_id, Purchase.program_id, location, day, func.count())
            .where(Purchase.merchant_id == merchant_id, *where())
            .group_by(Purchase.card_id, Purchase.program_id, location, day)
        ).all()
        out += [(int(c), int(merchant_id), int(p), int(loc), str(d), int(n)) for c, p, loc, d, n in rows]
    # A merged card's purchases are its kept card's.
    kept = owners(session, {row[0] for row in out})
    if kept:
        out = [(kept.get(row[0], row[0]), *row[1:]) for row in out]
    return out


Counts = dict[int, dict[int, int]]  # key -> local day ordinal -> purchases


def _counts(rows: Iterable[Row]) -> tuple[Counts, dict[tuple[int, int], dict[int, int]]]:
    """Per card, and per (card, location), the purchases of each day."""
    per_card: Counts = defaultdict(dict)
    per_place: dict[tuple[int, int], dict[int, int]] = defaultdict(dict)
    for card, _merchant, _program, location, day, n in rows:
        d = dt.date.fromisoformat(day).toordinal()
        per_card[card][d] = per_card[card].get(d, 0) + n
        per_place[(card, location)][d] = per_place[(card, location)].get(d, 0) + n
    return per_card, per_place


def _read(session: Session, cards: list[int], table: Any) -> dict[Any, rules.Activity]:
    """The stored activities of these cards: by card (GuestDays) or (card, location)."""
    by_place = table is GuestLocationDays
    out: dict[Any, rules.Activity] = {}
    key_cols = [table.card_id, table.location_id] if by_place else [table.card_id]
    for i in range(0, len(cards), 5_000):
        for row in session.execute(
            select(*key_cols, table.first_day, table.days, table.multi).where(
                table.card_id.in_(cards[i : i + 5_000])
            )
        ):
            key = (int(row[0]), int(row[1])) if by_place else int(row[0])
            out[key] = rules.Activity(int(row[-3]), row[-2], row[-1])
    return out


def _write(session: Session, table: Any, values: list[dict[str, Any]], keys: list[str]) -> None:
    """Upsert the rows: one Core statement, executed for many rows (batched by the
    driver; the ORM's bulk path would split them by which values are NULL)."""
    stmt = dialect_insert(session)(table.__table__)
    columns = ["program_id", "first_day", "last_day", "days", "multi"]
    if table is GuestLocationDays:
        columns.append("first_anywhere")
    stmt = stmt.on_conflict_do_update(index_elements=keys, set_={k: stmt.excluded[k] for k in columns})
    for i in range(0, len(values), 5_000):
        session.connection().execute(stmt, values[i : i + 5_000])


def _values_of(key: Any, merged: rules.Activity, owner: tuple[int, int]) -> dict[str, Any]:
    card = key[0] if isinstance(key, tuple) else key
    return {
        "card_id": card,
        **({"location_id": key[1]} if isinstance(key, tuple) else {}),
        "merchant_id": owner[0],
        "program_id": owner[1],
        "first_day": merged.first,
        "last_day": merged.last,
        "days": merged.days,
        "multi": merged.multi,
    }


def _merge(session: Session, rows: list[Row]) -> int:
    """Merge the per-day counts into their cards' rows (all locations, and each
    location); returns how many cards."""
    per_card, per_place = _counts(rows)
    if not per_card:
        return 0
    owner = {card: (merchant, program) for card, merchant, program, *_ in rows}
    ids = sorted(per_card)
    existing = _read(session, ids, GuestDays)
    first: dict[int, int] = {}  # the card's first day anywhere, these purchases included
    values = []
    for card in ids:
        merged = rules.merge(existing.get(card), per_card[card])
        assert merged is not None
        first[card] = merged.first
        values.append(_values_of(card, merged, owner[card]))
    _write(session, GuestDays, values, ["card_id"])
    places = _read(session, ids, GuestLocationDays)
    values = []
    for key in sorted(per_place):
        merged = rules.merge(places.get(key), per_place[key])
        assert merged is not None
        values.append({**_values_of(key, merged, owner[key[0]]), "first_anywhere": first[key[0]]})
    _write(session, GuestLocationDays, values, ["card_id", "location_id"])
    # An earlier first day anywhere: the card's other location rows learn it too.
    moved = [
        {"c": card, "f": first[card]}
        for card in ids
        if (old := existing.get(card)) is not None and old.first != first[card]
    ]
    if moved:
        table = GuestLocationDays.__table__
        session.connection().execute(
            table.update()
            .where(table.c.card_id == bindparam("c"), table.c.first_anywhere != bindparam("f"))
            .values(first_anywhere=bindparam("f")),
            moved,
        )
    return len(ids)


def _settled_up_to(session: Session, lo: int, hi: int, cutoff: dt.datetime) -> int:
    """The highest id <= hi such that every purchase in (lo, id] is older than `cutoff`
    (an id is assigned before its transaction commits: a younger one may still come)."""
    young = session.scalar(
        select(func.min(Purchase.id)).where(Purchase.id > lo, Purchase.id <= hi, Purchase.created_at > cutoff)
    )
    return hi if young is None else young - 1


def step(
    now: dt.datetime | None = None,
    settle: dt.timedelta = SETTLE,
    cards: int = CARDS_PER_STEP,
    ids: int = IDS_PER_STEP,
    backfill_over: int = BACKFILL_OVER,
) -> int:
    """One step of the fold in its own transaction; returns how much it did (cards or
    purchase ids; 0 when there is nothing to do). A backlog of more than `backfill_over`
    purchase ids starts a backfill."""
    now = now or db.utcnow()
    with db.transaction() as session:
        mark = state_row(session, WATERMARK, lock=True)
        target = state_row(session, TARGET)
        cursor = state_row(session, CURSOR)
        lo = mark.value
        if target.value > lo:
            return _backfill(session, mark, target, cursor, cards, now)
        top = session.scalar(select(func.max(Purchase.id)))
        if top is None or top <= lo:
            return 0
        if top - lo > backfill_over:
            goal = _settled_up_to(session, lo, int(top), now - settle)
            if goal <= lo:
                return 0
            target.value, cursor.value = goal, 0
            target.updated_at = cursor.updated_at = now
            return 1
        hi = _settled_up_to(session, lo, min(int(top), lo + ids), now - settle)
        if hi <= lo:
            return 0
        _merge(session, _grouped(session, lambda: [Purchase.id > lo, Purchase.id <= hi]))
        mark.value, mark.updated_at = hi, now
        return hi - lo


def _backfill(
    session: Session,
    mark: RollupState,
    target: RollupState,
    cursor: RollupState,
    cards: int,
    now: dt.datetime,
) -> int:
    """One range of cards: their rows rebuilt from all their purchases up to the target
    (so a range redone after a crash, or cards folded before, come out the same)."""
    goal, first = target.value, cursor.value
    last_card = session.scalar(select(func.max(Card.id))) or 0
    if first >= last_card:
        mark.value, mark.updated_at = goal, now
        return 1
    upto = first + cards
    for table in (GuestDays, GuestLocationDays):
        session.execute(delete(table).where(table.card_id > first, table.card_id <= upto))
    if session.get_bind().dialect.name == "postgresql":
        # The range's days sorted and grouped in memory, not in files.
        session.execute(text(f"SET LOCAL work_mem = '{FOLD_WORK_MEM}'"))
        session.execute(text(REBUILD), {"lo": first, "hi": upto, "goal": goal})
    else:
        # The range's cards' purchases, and those of the cards merged into them.
        mine = (Purchase.card_id > first) & (Purchase.card_id <= upto)
        where = [mine | Purchase.card_id.in_(_merged_into(first, upto)), Purchase.id <= goal]
        rows = _grouped(session, lambda: where)
        _merge(session, [row for row in rows if first < row[0] <= upto])
    cursor.value, cursor.updated_at = upto, now
    return 1


# PostgreSQL builds a range's bitmaps itself (no rows through Python), reading the
# purchases once: per card, location and local day the purchases; then per card (and per
# card and location) its days in order, each written as the zeros since the day before
# and a 1 or a 2 (two purchases or more) in one string_agg, turned into the two bit strings
# (linear in the span of days, where OR-ing one bit string per day as long as the span was
# quadratic). The same result as activity_rules.build(), which the tests check.
_BITS = """
SELECT card_id, place, merchant_id, program_id, first, last,
       CAST(translate(s, '2', '1') AS varbit) AS days,
       CASE WHEN strpos(s, '2') > 0 THEN CAST(translate(s, '12', '01') AS varbit) END AS multi
FROM (
  SELECT card_id, place, max(merchant_id) AS merchant_id, max(program_id) AS program_id,
         min(day) AS first, max(day) AS last,
         string_agg(repeat('0', day - prev - 1) || CASE WHEN n >= 2 THEN '2' ELSE '1' END, '' ORDER BY day) AS s
  FROM (
    SELECT d.*, coalesce(lag(day) OVER (PARTITION BY card_id, place ORDER BY day), day - 1) AS prev
    FROM {source} d
  ) x GROUP BY card_id, place
) y
"""
# A merged card's purchases count as its kept card's (the range's cards' own, but not
# those merged away, and those of the cards merged into them).
REBUILD = f"""
WITH merged AS MATERIALIZED (
  SELECT invitation_card_id AS src, max(card_id) AS dst FROM joins
  WHERE invitation_card_id IS NOT NULL AND card_id <> invitation_card_id GROUP BY invitation_card_id
), mine AS (
  SELECT p.card_id, p.merchant_id, p.program_id, p.location_id, p.created_at FROM purchases p
  WHERE p.card_id > :lo AND p.card_id <= :hi AND p.id <= :goal
    AND NOT EXISTS (SELECT 1 FROM merged WHERE src = p.card_id)
  UNION ALL
  SELECT mg.dst, p.merchant_id, p.program_id, p.location_id, p.created_at
  FROM merged mg JOIN purchases p ON p.card_id = mg.src
  WHERE mg.dst > :lo AND mg.dst <= :hi AND p.id <= :goal
), days AS MATERIALIZED (
  SELECT p.card_id, p.merchant_id, p.program_id, coalesce(p.location_id, 0) AS place,
         (timezone(m.timezone, p.created_at))::date - DATE '0001-01-01' + 1 AS day, count(*) AS n
  FROM mine p JOIN merchants m ON m.id = p.merchant_id
  GROUP BY 1, 2, 3, 4, 5
), cards AS (
  INSERT INTO analytics_guest_days (card_id, merchant_id, program_id, first_day, last_day, days, multi)
  SELECT card_id, merchant_id, program_id, first, last, days, multi FROM ({
    _BITS.format(
        source="(SELECT card_id, max(merchant_id) AS merchant_id, max(program_id) AS program_id, 0 AS place, day,"
        " sum(n) AS n FROM days GROUP BY card_id, day)"
    )
}) b
)
INSERT INTO analytics_guest_location_days
  (card_id, location_id, merchant_id, program_id, first_day, last_day, days, multi, first_anywhere)
SELECT b.card_id, place, merchant_id, program_id, first, last, days, multi, a.first_anywhere FROM ({
    _BITS.format(source="days")
}) b JOIN (SELECT card_id, min(day) AS first_anywhere FROM days GROUP BY card_id) a ON a.card_id = b.card_id
"""


def merge_cards(session: Session, source: int, target: int) -> None:
    """The invitation card `source` was merged into `target` (in this transaction): its
    rows go, and its purchases folded so far are folded into the kept card's rows; the
    rest are folded there by the fold (`owners`). Under the watermark's lock, so no
    step runs between reading how far the fold is and writing."""
    mark = state_row(session, WATERMARK, lock=True)
    v = _values(session, TARGET, CURSOR)
    for table in (GuestDays, GuestLocationDays):
        session.execute(delete(table).where(table.card_id == source))
    if v[TARGET] > mark.value:  # a backfill: done up to its target for the cards before the cursor
        if target > v[CURSOR]:
            return  # the kept card's range is rebuilt later, merged purchases included
        upto = v[TARGET]
    else:
        upto = mark.value
    rows = _grouped(session, lambda: [Purchase.card_id == source, Purchase.id <= upto])
    _merge(session, [(target, *row[1:]) for row in rows])


def catch_up(
    settle: dt.timedelta = SETTLE,
    max_steps: int | None = None,
    on_step: Callable[[float | None], None] | None = None,
    cards: int = CARDS_PER_STEP,
    backfill_over: int = BACKFILL_OVER,
) -> int:
    """Fold until nothing is left (or `max_steps`); `on_step` gets the progress after each."""
    steps = 0
    while max_steps is None or steps < max_steps:
        if step(settle=settle, cards=cards, backfill_over=backfill_over) == 0:
            break
        steps += 1
        if on_step is not None:
            with db.read() as session:
                on_step(progress(session))
    return steps


def catch_up_some() -> None:
    """The periodic job: a bounded number of steps."""
    catch_up(max_steps=20)


def progress(session: Session) -> float | None:
    """How far the backfill is (0..1), or None when the bitmaps are up to date enough
    to be read (no backfill running and no backlog that would start one)."""
    v = _values(session, WATERMARK, TARGET, CURSOR)
    if v[TARGET] > v[WATERMARK]:
        lo, hi = session.execute(select(func.min(Card.id), func.max(Card.id))).one()
        if not hi or hi <= (lo or 0):
            return 0.99
        return min(0.99, max(0.0, (v[CURSOR] - (lo or 0) + 1) / (hi - (lo or 0) + 1)))
    top = session.scalar(select(func.max(Purchase.id))) or 0
    return 0.0 if top - v[WATERMARK] > BACKFILL_OVER else None


# --- reading -------------------------------------------------------------------------------


def _window_columns(session: Session, table: Any, start: int, end: int) -> tuple[Any, Any]:
    """(purchase days in the window, days in it with two purchases or more) per row."""
    offset = start - table.first_day + 1  # 1-based position of the window's first day
    begin = case((offset < 1, 1), else_=offset)
    length = (end - start + 1) - (begin - offset)
    if session.get_bind().dialect.name == "postgresql":
        hits: Any = func.bit_count(func.substring(table.days, begin, length))
        multi: Any = func.coalesce(func.bit_count(func.substring(table.multi, begin, length)), 0)
        return hits, multi
    window = func.substr(table.days, begin, length)
    hits = func.length(window) - func.length(func.replace(window, "1", ""))
    multi = func.coalesce(func.instr(func.substr(table.multi, begin, length), "1"), 0)
    return hits, multi


def window_buyers(session: Session, f: Filters) -> dict[str, int] | None:
    """Buyers and repeat buyers of the filters' period from the bitmaps plus the
    purchases not folded in yet; None when the bitmaps cannot answer (being prepared, or
    too many purchases not folded in): then they are counted from the purchases."""
    if not READ:
        return None
    v = _values(session, WATERMARK, TARGET)
    if v[TARGET] > v[WATERMARK]:
        return None
    mark = v[WATERMARK]
    start, end = f.period.start.toordinal(), f.period.end.toordinal()
    tail_where = [Purchase.merchant_id == f.merchant_id, Purchase.id > mark]
    if f.program_id is not None:
        tail_where.append(Purchase.program_id == f.program_id)
    unfolded = select(Purchase.id).where(*tail_where).limit(TAIL_MAX + 1).subquery()
    if (session.scalar(select(func.count()).select_from(unfolded)) or 0) > TAIL_MAX:
        return None
    table: Any = GuestDays if f.location_id is None else GuestLocationDays
    where = [table.merchant_id == f.merchant_id, table.last_day >= start]
    if f.program_id is not None:
        where.append(table.program_id == f.program_id)
    if f.location_id is not None:
        where.append(table.location_id == f.location_id)
    # "Bought before" counts any location: a location row carries the card's first day
    # anywhere (no look-up among all locations).
    first = table.first_day if f.location_id is None else table.first_anywhere
    latest = session.scalar(
        select(func.max(GuestDays.last_day)).where(GuestDays.merchant_id == f.merchant_id)
    )
    if latest is None or end >= latest:
        # No purchase after the window (one ending now): a guest bought in it when their
        # last day is in it, and bought twice by its end unless their only purchase was
        # one single day in it. Read from the index alone (ix_..._merchant carries these).
        once = (table.first_day == table.last_day) & table.multi.is_(None)
        repeat = case(((first < start) | ~once, 1), else_=0)
        stmt = select(func.count(), func.coalesce(func.sum(repeat), 0)).where(*where)
    else:
        hits, multi = _window_columns(session, table, start, end)
        inner = select(first.label("first"), hits.label("hits"), multi.label("multi"))
        w = inner.where(*where, table.first_day <= end).subquery()
        bought = w.c.hits > 0
        repeat = case((bought & ((w.c.first < start) | (w.c.hits >= 2) | (w.c.multi > 0)), 1), else_=0)
        stmt = select(
            func.coalesce(func.sum(case((bought, 1), else_=0)), 0), func.coalesce(func.sum(repeat), 0)
        )
    buyers, repeaters = session.execute(stmt).one()
    # The purchases above the watermark: their cards' figures, before and after them.
    per_card, per_place = _counts(_grouped(session, lambda: tail_where))
    if not per_card:
        return {"buyers": int(buyers), "repeaters": int(repeaters)}
    cards = sorted(per_card)
    overall = _read(session, cards, GuestDays)
    overall_after = {c: rules.merge(overall.get(c), per_card[c]) for c in cards}
    if f.location_id is None:
        before: dict[int, rules.Activity | None] = {c: overall.get(c) for c in cards}
        after = overall_after
        first_before: dict[int, int | None] = {}
        first_after: dict[int, int | None] = {}
    else:
        places = _read(session, cards, GuestLocationDays)
        before = {c: places.get((c, f.location_id)) for c in cards}
        after = {c: rules.merge(before[c], per_place.get((c, f.location_id), {})) for c in cards}
        first_before = {c: a.first if (a := overall.get(c)) else None for c in cards}
        first_after = {c: a.first if (a := overall_after[c]) else None for c in cards}
    b0, r0 = rules.window_counts(before, start, end, first_before)
    b1, r1 = rules.window_counts(after, start, end, first_after)
    return {"buyers": int(buyers) - b0 + b1, "repeaters": int(repeaters) - r0 + r1}
