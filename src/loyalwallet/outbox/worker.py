"""The outbox worker: claims due rows, runs their handlers, records the outcome.

Claiming sets `locked_until` (a lease) and counts the attempt in one statement; on
PostgreSQL the candidate rows are picked with FOR UPDATE SKIP LOCKED, so any number of
`loyalwallet worker` processes share the queue without taking a row twice. A worker
that dies mid-delivery leaves its rows leased; they become due again when the lease
runs out (at-least-once delivery).

The attempt number is the fencing token: an outcome is recorded only if the row is
still pending at the attempt this worker claimed. A worker that overran its lease (and
whose row another worker took meanwhile) cannot overwrite the newer attempt's outcome,
and a worker never starts a claimed row after half its lease has passed: such rows are
handed back untouched, so two workers never run the same row at the same time.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, and_, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from loyalwallet import db
from loyalwallet.config import env
from loyalwallet.outbox.handlers import HANDLERS, OBSERVERS, PERIODIC, Delivery, Permanent, Retry
from loyalwallet.outbox.models import BULK, INTERACTIVE, OutboxMessage, PeriodicRun, WorkerHeartbeat
from loyalwallet.outbox.service import current_lane, wakeup

log = logging.getLogger("loyalwallet.worker")

LEASE = dt.timedelta(seconds=float(env("WORKER_LEASE_SECONDS", "60") or 60))
EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
FLUSH_SECONDS = 0.2
PERIODIC_TICK = 1.0  # how often the periodic thread looks for a job whose time has come


def backoff(attempts: int) -> float:
    """Seconds before the next try: 2, 4, 8 ... capped at an hour, with jitter."""
    base = min(3600.0, 2.0**attempts)
    return base * random.uniform(0.8, 1.2)


# Bulk-lane rows claimed at once (LOYALWALLET_WORKER_BULK_BATCH) by `claim` and `run_once`
# (drain, a worker with one bulk thread): a wave is taken a few rows at a time, so other
# worker processes share it and few leases are held at once. The worker's bulk loop
# (Worker._bulk_loop, run_flowing) leases one row per free thread. The bulk lane runs in
# its own loop: an interactive row never waits for a bulk one, however long it takes.
BULK_BATCH = int(env("WORKER_BULK_BATCH", "8") or 8)


def claim(
    batch: int = 50, now: dt.datetime | None = None, bulk_batch: int | None = None, lane: int | None = None
) -> list[Delivery]:
    """Lease due rows: the interactive ones first, at most `bulk_batch` bulk ones.
    `lane` (INTERACTIVE or BULK) claims that lane's rows only: the worker runs each lane
    in its own loop, so a long bulk row never holds up a purchase's card update."""
    now = now or db.utcnow()
    bulk_batch = BULK_BATCH if bulk_batch is None else bulk_batch
    due = and_(
        OutboxMessage.status == "pending",
        OutboxMessage.next_attempt_at <= now,
        or_(OutboxMessage.locked_until.is_(None), OutboxMessage.locked_until <= now),
    )
    if lane is not None:
        due = and_(due, OutboxMessage.priority == lane)
        if lane != INTERACTIVE:
            batch = min(batch, max(1, bulk_batch))
    with db.transaction() as session:
        pick = (
            select(OutboxMessage.id, OutboxMessage.priority)
            .where(due)
            # The interactive lane first: a purchase's card update never waits behind a
            # campaign or trigger wave (outbox.models.INTERACTIVE / BULK).
            .order_by(OutboxMessage.priority, OutboxMessage.next_attempt_at, OutboxMessage.id)
            .limit(batch)
        )
        if not db.is_sqlite():
            pick = pick.with_for_update(skip_locked=True)
        picked = session.execute(pick).all()
        ids = [row.id for row in picked if row.priority == INTERACTIVE]
        ids += [row.id for row in picked if row.priority != INTERACTIVE][: max(1, bulk_batch)]
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
                OutboxMessage.max_attempts,
                OutboxMessage.priority,
            )
        ).all()
    deliveries = [
        Delivery(
            r.id, r.merchant_id, r.topic, r.payload, r.attempts, r.created_at, r.max_attempts, r.priority
        )
        for r in rows
    ]
    deliveries.sort(key=lambda d: (d.priority, d.id))
    return deliveries


@dataclass(frozen=True)
class Outcome:
    msg: Delivery
    error: str | None = None
    dead: bool = False
    after: float | None = None  # seconds before the next try (Retry-After)
    released: bool = False  # not attempted: hand the row back as it was


def attempt(msg: Delivery) -> Outcome:
    """Run the row's handler; writes nothing about the row itself."""
    started = time.monotonic()
    outcome = _attempt(msg)
    if OBSERVERS:
        result = "done" if outcome.error is None else "dead" if outcome.dead else "retry"
        for observe in OBSERVERS:
            try:
                observe(msg.topic, result, time.monotonic() - started)
            except Exception:
                log.exception("outbox observer failed")
    return outcome


def _attempt(msg: Delivery) -> Outcome:
    handler = HANDLERS.get(msg.topic)
    if handler is None:
        return Outcome(msg, f"no handler for topic {msg.topic!r}", dead=True)
    lane = current_lane.set(msg.priority)
    try:
        handler(msg)
    except Permanent as exc:
        log.warning("outbox %s %s dead: %s", msg.id, msg.topic, exc)
        return Outcome(msg, f"permanent: {exc}", dead=True)
    except Retry as exc:
        return Outcome(msg, str(exc), after=exc.after)
    except Exception as exc:  # any other failure is retried with backoff
        log.warning("outbox %s %s failed (attempt %s): %r", msg.id, msg.topic, msg.attempts, exc)
        return Outcome(msg, f"{type(exc).__name__}: {exc}")
    finally:
        current_lane.reset(lane)
    return Outcome(msg)


def record(outcomes: list[Outcome]) -> int:
    """Write the outcomes of one batch in one transaction, each fenced by its attempt
    number. Returns how many rows were no longer ours (another worker took them)."""
    if not outcomes:
        return 0
    now = db.utcnow()
    lost = 0

    def fenced(items: list[Outcome]) -> ColumnElement[bool]:
        return and_(
            tuple_(OutboxMessage.id, OutboxMessage.attempts).in_([(o.msg.id, o.msg.attempts) for o in items]),
            OutboxMessage.status == "pending",
        )

    with db.transaction() as session:
        done = [o for o in outcomes if o.error is None and not o.released]
        if done:
            result = session.execute(
                update(OutboxMessage)
                .where(fenced(done))
                .values(status="done", delivered_at=now, last_error=None, locked_until=None)
            )
            lost += len(done) - result.rowcount  # type: ignore[attr-defined]  # a CursorResult at run time, typed as Result
        released = [o for o in outcomes if o.released]
        if released:
            result = session.execute(
                update(OutboxMessage)
                .where(fenced(released))
                .values(locked_until=None, attempts=OutboxMessage.attempts - 1)
            )
            lost += len(released) - result.rowcount  # type: ignore[attr-defined]  # a CursorResult at run time, typed as Result
        for o in outcomes:
            if o.error is None or o.released:
                continue
            error = o.error[:2000]
            if o.dead or o.msg.attempts >= o.msg.max_attempts:
                values: dict[str, object] = {"status": "dead", "last_error": error, "locked_until": None}
            else:
                delay = o.after if o.after is not None else backoff(o.msg.attempts)
                values = {
                    "status": "pending",
                    "last_error": error,
                    "locked_until": None,
                    "next_attempt_at": now + dt.timedelta(seconds=delay),
                }
            result = session.execute(update(OutboxMessage).where(fenced([o])).values(**values))
            lost += 1 - result.rowcount  # type: ignore[attr-defined]  # a CursorResult at run time, typed as Result
    if lost:
        log.warning("%s outbox outcome(s) not recorded: the lease ran out and another worker took them", lost)
    return lost


def deliver(msg: Delivery) -> bool:
    """Run one claimed row and record its outcome; True when delivered."""
    outcome = attempt(msg)
    record([outcome])
    return outcome.error is None


def run_once(batch: int = 50, pool: ThreadPoolExecutor | None = None, lane: int | None = None) -> int:
    """Deliver what is due now (in `lane` only, if given); returns how many rows were
    handled."""
    msgs = claim(batch, lane=lane)
    if not msgs:
        return 0
    # Rows not started before half the lease are handed back, so a slow batch never
    # runs a row whose lease another worker may already have taken over.
    deadline = time.monotonic() + LEASE.total_seconds() / 2

    def run(msg: Delivery) -> Outcome:
        if time.monotonic() > deadline:
            return Outcome(msg, released=True)
        return attempt(msg)

    # Outcomes are written in groups: one transaction per FLUSH_SECONDS of work, not
    # one per row. A crash loses at most that much bookkeeping (those rows are tried
    # again later: at-least-once), never a row.
    pending: list[Outcome] = []
    last_flush = time.monotonic()
    for outcome in pool.map(run, msgs) if pool is not None else map(run, msgs):
        pending.append(outcome)
        if time.monotonic() - last_flush >= FLUSH_SECONDS:
            record(pending)
            pending, last_flush = [], time.monotonic()
    record(pending)
    return len(msgs)


def run_flowing(
    pool: ThreadPoolExecutor,
    threads: int,
    stop: threading.Event,
    poll: float,
    counter: Worker | None = None,
    lane: int = BULK,
) -> None:
    """Keep `threads` rows of `lane` running until `stop`: claim as many rows as threads
    are free, start them at once, and claim again as soon as one ends (run_once waits
    for every row of its claim: one slow row, an apple.push of 100 tokens against a slow
    APNs, held up the next claim while the other threads stood idle). Outcomes are
    recorded as in run_once, fenced, one transaction per FLUSH_SECONDS."""
    running: dict[Future[Outcome], Delivery] = {}
    outcomes: list[Outcome] = []
    last_flush = time.monotonic()
    idle = False  # the last claim found nothing: wait for a row to end or `poll`

    def run(msg: Delivery, deadline: float) -> Outcome:
        if time.monotonic() > deadline:  # never in practice: claimed for a free thread
            return Outcome(msg, released=True)
        return attempt(msg)

    try:
        while not stop.is_set():
            free = threads - len(running)
            claimed: list[Delivery] = []
            if free > 0:
                try:
                    claimed = claim(free, lane=lane, bulk_batch=free)
                except Exception:
                    log.exception("worker bulk claim failed")
                deadline = time.monotonic() + LEASE.total_seconds() / 2
                for msg in claimed:
                    running[pool.submit(run, msg, deadline)] = msg
            idle = not claimed
            if not running:
                if outcomes:
                    try:
                        record(outcomes)
                    except Exception:
                        log.exception("worker bulk record failed")  # the leases run out: tried again
                    outcomes, last_flush = [], time.monotonic()
                stop.wait(poll)
                continue
            # A free thread with nothing claimed waits for a row to end (or `poll`);
            # otherwise come back soon enough to record outcomes every FLUSH_SECONDS.
            done, _ = wait(
                running, timeout=poll if idle and free > 0 else FLUSH_SECONDS, return_when=FIRST_COMPLETED
            )
            for future in done:
                running.pop(future)
                outcomes.append(future.result())
            if counter is not None:
                counter.handled += len(done)
            if outcomes and (not running or time.monotonic() - last_flush >= FLUSH_SECONDS):
                try:
                    record(outcomes)
                except Exception:
                    log.exception("worker bulk record failed")  # the leases run out: tried again
                outcomes, last_flush = [], time.monotonic()
    finally:
        for future in running:
            outcomes.append(future.result())
        if outcomes:
            record(outcomes)


def drain(max_rounds: int = 100) -> int:
    """Deliver until nothing is due (tests and the CLI use this)."""
    total = 0
    for _ in range(max_rounds):
        n = run_once()
        total += n
        if n == 0:
            break
    return total


HEARTBEAT_SECONDS = float(env("WORKER_HEARTBEAT_SECONDS", "10") or 10)


def heartbeat(name: str, kind: str, started_at: dt.datetime, handled: int) -> None:
    """Record that the worker loop `name` is alive (an upsert of its row); sweep rows of
    processes silent for a day."""
    now = db.utcnow()
    insert = sqlite_insert if db.is_sqlite() else pg_insert
    values = {"name": name, "kind": kind, "started_at": started_at, "beat_at": now, "handled": handled}
    stmt = insert(WorkerHeartbeat).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["name"], set_={"beat_at": now, "handled": handled, "started_at": started_at}
    )
    with db.transaction() as session:
        session.execute(stmt)
        session.execute(
            WorkerHeartbeat.__table__.delete().where(WorkerHeartbeat.beat_at < now - dt.timedelta(days=1))
        )


def claim_periodic(name: str, interval: float, now: dt.datetime | None = None) -> bool:
    """True when this process may run the job now: it last started more than
    `interval` seconds ago in ANY process (a conditional UPDATE decides the race)."""
    now = now or db.utcnow()
    insert = sqlite_insert if db.is_sqlite() else pg_insert
    with db.transaction() as session:
        session.execute(insert(PeriodicRun).values(name=name, started_at=EPOCH).on_conflict_do_nothing())
        result = session.execute(
            update(PeriodicRun)
            .where(PeriodicRun.name == name, PeriodicRun.started_at <= now - dt.timedelta(seconds=interval))
            .values(started_at=now)
        )
        return result.rowcount == 1  # type: ignore[attr-defined]  # a CursorResult at run time, typed as Result


@dataclass
class Worker:
    """A worker loop, in a thread of `serve` or in its own `loyalwallet worker` process.

    `threads` handlers run at once (network-bound pushes and webhooks); their outcomes
    are recorded together, one transaction per batch."""

    poll_seconds: float = 0.5
    run_periodic: bool = True
    threads: int = int(env("WORKER_THREADS", "4") or 4)
    # The bulk lane's own loop and threads (campaign and trigger waves).
    bulk_threads: int = int(env("WORKER_BULK_THREADS", "4") or 4)
    # An idle bulk lane looks less often: a wave may start a second later, and an idle
    # worker sends a quarter of the bulk loop's claims.
    bulk_poll_seconds: float = float(env("WORKER_BULK_POLL_SECONDS", "2") or 2)
    # Periodic jobs running at once (each job one at a time).
    periodic_threads: int = int(env("WORKER_PERIODIC_THREADS", "3") or 3)
    batch: int = 50
    stop_event: threading.Event = field(default_factory=threading.Event)
    _last_run: dict[str, float] = field(default_factory=dict)
    _intervals: dict[str, float] = field(default_factory=dict)  # each job's seconds, read once
    _running: set[str] = field(default_factory=set)  # periodic jobs started and not finished
    kind: str = "worker"  # "embedded" in serve
    name: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    handled: int = 0
    _last_beat: float = -1e9

    def _beat(self, started_at: dt.datetime) -> None:
        now = time.monotonic()
        if now - self._last_beat < HEARTBEAT_SECONDS:
            return
        self._last_beat = now
        try:
            heartbeat(self.name, self.kind, started_at, self.handled)
        except Exception:
            log.exception("worker heartbeat failed")

    def _periodic(self, pool: ThreadPoolExecutor | None = None) -> None:
        """Start every job whose time has come and that is not still running (in `pool`,
        or here one after the other)."""
        now = time.monotonic()
        for job in list(PERIODIC):
            name, interval, fn = job.name, self._intervals.setdefault(job.name, job.interval()), job.run
            if name in self._running or now - self._last_run.get(name, -interval) < interval:
                continue
            self._last_run[name] = now
            if pool is None:
                self._run_job(name, interval, fn)
            else:
                self._running.add(name)
                pool.submit(self._run_job, name, interval, fn)

    def _run_job(self, name: str, interval: float, fn: Callable[[], object]) -> None:
        try:
            if claim_periodic(name, interval):
                fn()
        except Exception:
            log.exception("periodic job %s failed", name)
        finally:
            self._running.discard(name)

    def _periodic_loop(self) -> None:
        """The periodic jobs, in their own threads: a long job never holds up delivery,
        nor the other jobs (a slow analytics roll-up does not stop the retention).
        Each job does a bounded amount of work per run (its own batch limits)."""
        with ThreadPoolExecutor(self.periodic_threads, thread_name_prefix="outbox-periodic") as pool:
            while not self.stop_event.is_set():
                self._periodic(pool)
                self.stop_event.wait(PERIODIC_TICK)

    def _bulk_loop(self) -> None:
        """The bulk lane in its own thread: a wave's rows (a trigger run listing its
        guests, a chunk of a campaign) may take seconds each; meanwhile the main loop
        keeps claiming the interactive lane. A thread freed by a row that ended takes
        a new row at once (`run_flowing`), not when the slowest row of its claim ends."""
        if self.bulk_threads <= 1:
            while not self.stop_event.is_set():
                try:
                    handled = run_once(self.batch, None, lane=BULK)
                    self.handled += handled
                except Exception:
                    log.exception("worker bulk loop error")
                    handled = 0
                if handled == 0:
                    self.stop_event.wait(max(self.poll_seconds, self.bulk_poll_seconds))
            return
        poll = max(self.poll_seconds, self.bulk_poll_seconds)
        with ThreadPoolExecutor(self.bulk_threads, thread_name_prefix="outbox-bulk") as pool:
            while not self.stop_event.is_set():
                try:
                    run_flowing(pool, self.bulk_threads, self.stop_event, poll, self)
                except Exception:  # never let the bulk lane die with its thread
                    log.exception("worker bulk loop error")
                    self.stop_event.wait(poll)

    def run(self) -> None:
        log.info("outbox worker started (%s + %s bulk thread(s))", self.threads, self.bulk_threads)
        pool = ThreadPoolExecutor(self.threads, thread_name_prefix="outbox") if self.threads > 1 else None
        periodic = None
        if self.run_periodic:
            periodic = threading.Thread(target=self._periodic_loop, name="outbox-periodic", daemon=True)
            periodic.start()
        bulk = threading.Thread(target=self._bulk_loop, name="outbox-bulk", daemon=True)
        bulk.start()
        started_at = db.utcnow()
        try:
            while not self.stop_event.is_set():
                self._beat(started_at)
                try:
                    handled = run_once(self.batch, pool, lane=INTERACTIVE)
                    self.handled += handled
                except Exception:
                    log.exception("worker loop error")
                    handled = 0
                if handled == 0:
                    wakeup.wait(self.poll_seconds)
                    wakeup.clear()
        finally:
            self.stop_event.set()
            if pool is not None:
                pool.shutdown(wait=True)
            bulk.join(timeout=60)
            if periodic is not None:
                periodic.join(timeout=30)

    def start_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="outbox-worker", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self.stop_event.set()
        wakeup.set()
