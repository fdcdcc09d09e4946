"""The outbox worker: claims due rows, runs their handlers, records the outcome.

Claiming sets `locked_until` (a lease) and counts the attempt in one statement; on
PostgreSQL the candidate rows are picked with FOR UPDATE SKIP LOCKED, so any number of
`loyalwallet worker` processes share the queue without taking a row twice. A worker
that dies mid-delivery leaves its rows leased; they become due again when the lease
runs out (at-least-once delivery).
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import time
from dataclasses import dataclass, field

from sqlalchemy import and_, or_, select, update

from loyalwallet import db
from loyalwallet.outbox.handlers import HANDLERS, PERIODIC, Delivery, Permanent, Retry, load_all
from loyalwallet.outbox.models import OutboxMessage
from loyalwallet.outbox.service import wakeup

log = logging.getLogger("loyalwallet.worker")

LEASE = dt.timedelta(seconds=60)


def backoff(attempts: int) -> float:
    """Seconds before the next try: 2, 4, 8 ... capped at an hour, with jitter."""
    base = min(3600.0, 2.0**attempts)
    return base * random.uniform(0.8, 1.2)


def claim(batch: int = 50, now: dt.datetime | None = None) -> list[Delivery]:
    now = now or db.utcnow()
    due = and_(
        OutboxMessage.status == "pending",
        OutboxMessage.next_attempt_at <= now,
        or_(OutboxMessage.locked_until.is_(None), OutboxMessage.locked_until <= now),
    )
    with db.transaction() as session:
        pick = (
            select(OutboxMessage.id)
            .where(due)
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
            .limit(batch)
        )
        if not db.is_sqlite():
            pick = pick.with_for_update(skip_locked=True)
        ids = list(session.scalars(pick))
        if not ids:
            return []
        rows = session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids))
            .values(locked_until=now + LEASE, attempts=OutboxMessage.attempts + 1)
            .returning(
                OutboxMessage.id,
                OutboxMessage.merchant_id,
                OutboxMessage.topic,
                OutboxMessage.payload,
                OutboxMessage.attempts,
                OutboxMessage.created_at,
            )
        ).all()
    deliveries = [Delivery(r.id, r.merchant_id, r.topic, r.payload, r.attempts, r.created_at) for r in rows]
    deliveries.sort(key=lambda d: d.id)
    return deliveries


def _finish(msg: Delivery, error: str | None, *, dead: bool = False, after: float | None = None) -> None:
    now = db.utcnow()
    with db.transaction() as session:
        row = session.get(OutboxMessage, msg.id)
        if row is None:
            return
        if error is None:
            row.status = "done"
            row.delivered_at = now
            row.last_error = None
        elif dead or row.attempts >= row.max_attempts:
            row.status = "dead"
            row.last_error = error[:2000]
        else:
            row.status = "pending"
            row.last_error = error[:2000]
            row.next_attempt_at = now + dt.timedelta(
                seconds=after if after is not None else backoff(row.attempts)
            )
        row.locked_until = None


def deliver(msg: Delivery) -> bool:
    handler = HANDLERS.get(msg.topic)
    if handler is None:
        _finish(msg, f"no handler for topic {msg.topic!r}", dead=True)
        return False
    try:
        handler(msg)
    except Permanent as exc:
        log.warning("outbox %s %s dead: %s", msg.id, msg.topic, exc)
        _finish(msg, f"permanent: {exc}", dead=True)
        return False
    except Retry as exc:
        _finish(msg, str(exc), after=exc.after)
        return False
    except Exception as exc:  # any other failure is retried with backoff
        log.warning("outbox %s %s failed (attempt %s): %r", msg.id, msg.topic, msg.attempts, exc)
        _finish(msg, f"{type(exc).__name__}: {exc}")
        return False
    _finish(msg, None)
    return True


def run_once(batch: int = 50) -> int:
    """Deliver what is due now; returns how many rows were handled."""
    load_all()
    msgs = claim(batch)
    for msg in msgs:
        deliver(msg)
    return len(msgs)


def drain(max_rounds: int = 100) -> int:
    """Deliver until nothing is due (tests and the CLI use this)."""
    total = 0
    for _ in range(max_rounds):
        n = run_once()
        total += n
        if n == 0:
            break
    return total


@dataclass
class Worker:
    """A worker loop, in a thread of `serve` or in its own `loyalwallet worker` process."""

    poll_seconds: float = 0.5
    run_periodic: bool = True
    stop_event: threading.Event = field(default_factory=threading.Event)
    _last_run: dict[str, float] = field(default_factory=dict)

    def _periodic(self) -> None:
        now = time.monotonic()
        for name, interval, fn in list(PERIODIC):
            if now - self._last_run.get(name, 0.0) >= interval:
                self._last_run[name] = now
                try:
                    fn()
                except Exception:
                    log.exception("periodic job %s failed", name)

    def run(self) -> None:
        load_all()
        log.info("outbox worker started")
        while not self.stop_event.is_set():
            try:
                handled = run_once()
                if self.run_periodic:
                    self._periodic()
            except Exception:
                log.exception("worker loop error")
                handled = 0
            if handled == 0:
                wakeup.wait(self.poll_seconds)
                wakeup.clear()

    def start_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="outbox-worker", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self.stop_event.set()
        wakeup.set()
