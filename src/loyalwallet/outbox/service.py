"""Writing to the outbox, inside the business transaction.

A change someone outside must hear about is recorded here in the same transaction as
the change itself: if the transaction rolls back, nothing is sent; if it commits, the
worker delivers it at least once, whatever happens to this process afterwards.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import threading
from typing import Any

from sqlalchemy import event, insert
from sqlalchemy.orm import Session, SessionTransaction

from loyalwallet.db import utcnow
from loyalwallet.outbox.models import INTERACTIVE, OutboxMessage

# Set after a commit that wrote outbox rows: wakes an embedded worker at once.
wakeup = threading.Event()

# The lane of the row being delivered (set by the worker around each handler): rows it
# queues go in the same lane, so a campaign's or a trigger's fan-out stays behind what
# people are waiting for, however it is split into rows.
current_lane: contextvars.ContextVar[int] = contextvars.ContextVar("outbox_lane", default=INTERACTIVE)


def enqueue(
    session: Session,
    merchant_id: int | None,
    topic: str,
    payload: dict[str, Any],
    *,
    delay: dt.timedelta | None = None,
    max_attempts: int = 12,
    place: dt.datetime | None = None,
    priority: int | None = None,
) -> None:
    """`priority`: the lane (outbox.models.INTERACTIVE or BULK); by default the lane of
    the row being delivered, or INTERACTIVE outside the worker.
    `place`: an earlier time to queue the row as of (due since then: the worker takes
    rows in due order). A fan-out row passes its cause's created_at, so it does not wait
    behind everything queued after the change it carries on (a campaign's pushes behind
    all of its Google messages)."""
    now = utcnow()
    due = now + delay if delay else now
    if place is not None and delay is None:
        due = min(due, place)
    # Buffered and written in one multi-row INSERT just before the commit (below): one
    # round trip per transaction however many rows it queues.
    session.info.setdefault("outbox_rows", []).append(
        {
            "merchant_id": merchant_id,
            "topic": topic,
            "payload": payload,
            "status": "pending",
            "attempts": 0,
            "max_attempts": max_attempts,
            "priority": current_lane.get() if priority is None else priority,
            "next_attempt_at": due,
            "created_at": now,
        }
    )


def emit_event(session: Session, merchant_id: int, name: str, data: dict[str, Any]) -> None:
    """A business event (purchase.created, card.created, ...) for webhooks and triggers."""
    enqueue(session, merchant_id, "event", {"name": name, "data": data, "at": utcnow().isoformat()})


@event.listens_for(Session, "before_commit")
def _write_buffered(session: Session) -> None:
    rows = session.info.pop("outbox_rows", None)
    if rows:
        session.execute(insert(OutboxMessage.__table__), rows)
        session.info["outbox_written"] = True


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop("outbox_written", False):
        wakeup.set()


# A rolled-back SAVEPOINT (begin_nested: e.g. the optional Google link in a card view)
# drops only the rows queued inside it; the purchase around it keeps its own.
@event.listens_for(Session, "after_transaction_create")
def _mark_savepoint(session: Session, transaction: SessionTransaction) -> None:
    if transaction.nested:
        marks = session.info.setdefault("outbox_marks", {})
        marks[id(transaction)] = len(session.info.get("outbox_rows", ()))


@event.listens_for(Session, "after_soft_rollback")
def _after_rollback(session: Session, previous: SessionTransaction) -> None:
    mark = session.info.get("outbox_marks", {}).pop(id(previous), None)
    if previous.nested:
        rows = session.info.get("outbox_rows")
        if rows is not None and mark is not None:
            del rows[mark:]
    else:
        session.info.pop("outbox_rows", None)
        session.info.pop("outbox_written", None)


@event.listens_for(Session, "after_transaction_end")
def _after_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # committed (rows written) or rolled back or closed
        session.info.pop("outbox_rows", None)
        session.info.pop("outbox_marks", None)
