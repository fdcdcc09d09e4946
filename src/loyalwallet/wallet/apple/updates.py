"""Which of a device's passes changed since it last asked: the `lastUpdated` tag.

The trap. A device asks "serials updated since <tag>" and keeps the `lastUpdated` we
answer. With timestamps as tags, two transactions can stamp T1 < T2 and commit in the
other order: a device asking between the two commits sees T2, stores it, and never hears
of the change stamped T1, which becomes visible only later with a smaller stamp. Any
number handed out *before* commit (a clock, a sequence) has this gap.

So the change number must be in commit order, or the tag must remember what was still
in flight:

- SQLite: writers are serialised (BEGIN IMMEDIATE), so a counter incremented inside the
  writing transaction is in commit order. The tag is the counter a reader's snapshot
  sees ("s<n>"); changed since it means change_seq > n.
- PostgreSQL: every stamping transaction writes its own transaction id
  (pg_current_xact_id()). The tag is the reader's snapshot: xmax (every transaction that
  will commit later has an id >= xmax, or is listed as in progress) plus the ids still in
  progress ("p<xmax>.<xmax-id>..."). Changed since the tag means change_seq >= xmax or
  change_seq is one of the in-progress ids. Nothing is missed and, when no transaction
  was in flight, nothing is reported twice. Should very many be in flight, the tag falls
  back to the snapshot's xmin: still safe, at worst a few passes are fetched again and
  answered 304.

The number is stamped on the device registrations of a pass (by the card.changed
listener, after the business transaction committed, and at registration).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, or_, text, update
from sqlalchemy.orm import Session

from loyalwallet.db import is_sqlite
from loyalwallet.wallet.apple.models import AppleCounter, AppleRegistration

MAX_IN_FLIGHT = 40  # in-progress ids kept in a tag before falling back to xmin


@dataclass(frozen=True)
class Tag:
    floor: int  # PostgreSQL: changes with seq >= floor; SQLite: seq > floor
    in_flight: tuple[int, ...] = ()
    sqlite: bool = True

    def encode(self) -> str:
        if self.sqlite:
            return f"s{self.floor}"
        return "p" + ".".join([str(self.floor), *(str(self.floor - x) for x in self.in_flight)])


def parse(raw: str | None) -> Tag | None:
    """A tag we handed out, or None (absent or not ours: answer every serial)."""
    if not raw or len(raw) > 2000:
        return None
    try:
        if raw[0] == "s" and is_sqlite():
            return Tag(int(raw[1:]))
        if raw[0] == "p" and not is_sqlite():
            floor, *deltas = (int(x) for x in raw[1:].split("."))
            if floor < 0 or any(d <= 0 for d in deltas):
                return None
            return Tag(floor, tuple(floor - d for d in deltas), sqlite=False)
    except ValueError:
        return None
    return None


def stamp(session: Session) -> int:
    """The change number of this (writing) transaction."""
    if is_sqlite():
        session.execute(
            text(
                "INSERT INTO apple_counters (name, value) VALUES ('changes', 0) ON CONFLICT (name) DO NOTHING"
            )
        )
        return int(
            session.execute(
                update(AppleCounter)
                .where(AppleCounter.name == "changes")
                .values(value=AppleCounter.value + 1)
                .returning(AppleCounter.value)
            ).scalar_one()
        )
    return int(session.execute(text("SELECT pg_current_xact_id()::text::bigint")).scalar_one())


def current(session: Session) -> Tag:
    """The tag for an answer; take it BEFORE reading the registrations (an earlier
    snapshot can only make the next answer include more, never less)."""
    if is_sqlite():
        value = session.execute(text("SELECT value FROM apple_counters WHERE name = 'changes'")).scalar()
        return Tag(int(value or 0))
    row = session.execute(
        text(
            "SELECT pg_snapshot_xmin(s)::text::bigint, pg_snapshot_xmax(s)::text::bigint,"
            " array(SELECT x::text::bigint FROM pg_snapshot_xip(s) AS x ORDER BY 1)"
            " FROM pg_current_snapshot() AS s"
        )
    ).one()
    xmin, xmax, in_flight = int(row[0]), int(row[1]), tuple(int(x) for x in row[2] or ())
    if len(in_flight) > MAX_IN_FLIGHT:
        return Tag(xmin, (), sqlite=False)
    return Tag(xmax, in_flight, sqlite=False)


def changed_since(tag: Tag) -> ColumnElement[bool]:
    seq = AppleRegistration.change_seq
    if tag.sqlite:
        return seq > tag.floor
    if tag.in_flight:
        return or_(seq >= tag.floor, seq.in_(tag.in_flight))
    return seq >= tag.floor
