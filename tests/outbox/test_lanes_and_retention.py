"""The outbox's two lanes (a purchase's card update is never behind a campaign or trigger
wave) and the retention of delivered rows (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import delete, select, update

from loyalwallet import db
from loyalwallet.outbox import handlers, retention, worker
from loyalwallet.outbox.models import BULK, INTERACTIVE, OutboxMessage
from loyalwallet.outbox.service import enqueue
from support import Shop


def _release(ids: list[int]) -> None:
    with db.transaction() as session:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids))
            .values(locked_until=None, attempts=OutboxMessage.attempts - 1)
        )


def test_a_purchase_is_claimed_before_a_thousand_queued_wave_rows(shop: Shop) -> None:
    program = shop.program("bonus")
    code = shop.card(program)["code"]
    worker.drain()
    with db.transaction() as session:
        for i in range(1000):
            enqueue(session, shop.merchant_id, "test.wave", {"i": i}, priority=BULK)
    shop.buy(code, 10_000)  # queues the card's card.changed after the whole wave
    try:
        claimed = worker.claim(batch=50)
        _release([d.id for d in claimed])
        topics = [(d.merchant_id, d.topic) for d in claimed]
        assert (shop.merchant_id, "card.changed") in topics
        waves = [i for i, (_, topic) in enumerate(topics) if topic == "test.wave"]
        assert not waves or topics.index((shop.merchant_id, "card.changed")) < waves[0]
        assert all(d.priority == INTERACTIVE for d in claimed if d.topic != "test.wave")
    finally:
        with db.transaction() as session:
            session.execute(delete(OutboxMessage).where(OutboxMessage.topic == "test.wave"))
        worker.drain()


def test_rows_queued_by_a_wave_row_stay_in_its_lane() -> None:
    def wave(msg: handlers.Delivery) -> None:
        with db.transaction() as session:
            enqueue(session, None, "test.lane-child", {"of": msg.payload["n"]})

    handlers.HANDLERS["test.lane-parent"] = wave
    handlers.HANDLERS["test.lane-child"] = lambda msg: None
    try:
        with db.transaction() as session:
            enqueue(session, None, "test.lane-parent", {"n": "bulk"}, priority=BULK)
            enqueue(session, None, "test.lane-parent", {"n": "person"})
        for _ in range(5):
            worker.run_once()
        with db.read() as session:
            children = {
                r.payload["of"]: r.priority
                for r in session.execute(
                    select(OutboxMessage.payload, OutboxMessage.priority).where(
                        OutboxMessage.topic == "test.lane-child"
                    )
                )
            }
        assert children == {"bulk": BULK, "person": INTERACTIVE}
    finally:
        handlers.HANDLERS.pop("test.lane-parent")
        handlers.HANDLERS.pop("test.lane-child")


def test_delivered_rows_go_after_the_retention_dead_ones_stay() -> None:
    now = db.utcnow()
    old = now - dt.timedelta(days=8)
    with db.transaction() as session:
        for status, at in (("done", old), ("done", now), ("dead", old), ("pending", old)):
            session.add(
                OutboxMessage(
                    topic="test.retention",
                    payload={"status": status, "old": at == old},
                    status=status,
                    attempts=1,
                    max_attempts=1 if status != "pending" else 12,
                    next_attempt_at=at if status != "pending" else now + dt.timedelta(days=1),
                    created_at=at,
                    delivered_at=at if status == "done" else None,
                )
            )
    try:
        assert retention.purge_delivered(batch=1) >= 1  # batches of one still finish
        with db.read() as session:
            left = sorted(
                (r.payload["status"], r.payload["old"])
                for r in session.scalars(select(OutboxMessage).where(OutboxMessage.topic == "test.retention"))
            )
        assert left == [("dead", True), ("done", False), ("pending", True)]
        assert retention.purge_delivered(days=0) == 0  # 0 keeps everything
    finally:
        with db.transaction() as session:
            session.execute(delete(OutboxMessage).where(OutboxMessage.topic == "test.retention"))


def test_a_card_update_is_delivered_while_a_long_wave_row_runs() -> None:
    """Issue 19: the bulk lane has its own loop. A wave row that takes long (a trigger run
    listing thousands of guests) must not hold up the interactive lane: before, one claim
    loop waited for its whole batch, bulk rows included."""
    import threading

    started, release, person = threading.Event(), threading.Event(), threading.Event()

    def long_wave(msg: handlers.Delivery) -> None:
        started.set()
        assert release.wait(120), "the test never released the wave row"

    handlers.HANDLERS["test.long-wave"] = long_wave
    handlers.HANDLERS["test.person"] = lambda msg: person.set()
    w = worker.Worker(poll_seconds=0.05, run_periodic=False)
    thread = w.start_thread()
    try:
        with db.transaction() as session:
            enqueue(session, None, "test.long-wave", {}, priority=BULK)
        assert started.wait(60), "the wave row was never claimed"
        with db.transaction() as session:
            enqueue(session, None, "test.person", {})  # a purchase's card update, say
        # Delivered while the wave row still runs (it runs until released below).
        delivered = person.wait(60)
        still_running = not release.is_set()
        assert delivered and still_running
    finally:
        release.set()
        w.stop()
        thread.join(timeout=60)
        handlers.HANDLERS.pop("test.long-wave")
        handlers.HANDLERS.pop("test.person")
    with db.read() as session:
        statuses = dict(
            session.execute(
                select(OutboxMessage.topic, OutboxMessage.status).where(
                    OutboxMessage.topic.in_(["test.long-wave", "test.person"])
                )
            ).all()
        )
    assert statuses == {"test.long-wave": "done", "test.person": "done"}


def test_a_periodic_jobs_interval_can_be_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """A soak (or an operator) runs the idempotency expiry every minute instead of ten."""
    job = handlers.Periodic("idempotency-expiry", 600.0, lambda: None)
    assert job.interval() == 600.0
    monkeypatch.setenv("LOYALWALLET_PERIODIC_SECONDS_IDEMPOTENCY_EXPIRY", "60")
    assert job.interval() == 60.0
    monkeypatch.setenv("LOYALWALLET_PERIODIC_SECONDS_IDEMPOTENCY_EXPIRY", "soon")
    assert job.interval() == 600.0


def test_a_slow_periodic_job_does_not_hold_up_the_others() -> None:
    """Issue 19's soak: an analytics roll-up that ran for minutes kept the outbox retention
    (the next job in the list) from running, and the table grew. Each job now runs in the
    periodic pool; only the same job waits for itself."""
    import threading
    import uuid

    slow_started, release, quick_ran = threading.Event(), threading.Event(), threading.Event()
    tag = uuid.uuid4().hex[:8]

    def slow() -> None:
        slow_started.set()
        assert release.wait(120), "the test never released the slow job"

    saved = list(handlers.PERIODIC)
    handlers.PERIODIC[:] = [
        handlers.Periodic(f"test-slow-{tag}", 0.1, slow),
        handlers.Periodic(f"test-quick-{tag}", 0.1, quick_ran.set),
    ]
    w = worker.Worker(poll_seconds=0.05)
    thread = w.start_thread()
    try:
        assert slow_started.wait(60), "the slow job never started"
        quick_ran.clear()  # it may have run before the slow one started: again, now
        ran_meanwhile = quick_ran.wait(60)
        still_slow = not release.is_set()
        assert ran_meanwhile and still_slow
    finally:
        release.set()
        w.stop()
        thread.join(timeout=60)
        handlers.PERIODIC[:] = saved


def _vacuums(table: str) -> int:
    with db.get_engine().connect() as conn:
        return int(
            conn.exec_driver_sql(
                "SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = %(t)s", {"t": table}
            ).scalar_one()
        )


def test_a_purge_that_deleted_rows_vacuums_the_table() -> None:
    """The soak found the outbox and idempotency tables growing on disk with flat row counts
    where autovacuum is off: a purge that deleted rows now vacuums its table (PostgreSQL)."""
    if db.is_sqlite():
        pytest.skip("VACUUM of one table is PostgreSQL's")
    from loyalwallet.checkout import idempotency
    from loyalwallet.checkout.models import IdempotencyRecord

    old = db.utcnow() - dt.timedelta(days=8)
    with db.transaction() as session:
        session.add(
            OutboxMessage(
                topic="test.vacuum",
                payload={},
                status="done",
                attempts=1,
                max_attempts=1,
                next_attempt_at=old,
                created_at=old,
                delivered_at=old,
            )
        )
    before = _vacuums("outbox")
    assert retention.purge_delivered() >= 1
    assert _vacuums("outbox") == before + 1
    assert retention.purge_delivered() == 0  # nothing deleted: no VACUUM
    assert _vacuums("outbox") == before + 1

    table = IdempotencyRecord.__table__.name
    before = _vacuums(table)
    assert idempotency.purge_expired() == 0
    assert _vacuums(table) == before


def test_a_bulk_thread_freed_takes_a_new_row_while_a_long_one_runs() -> None:
    """Issue 14: a bulk row queued while a long bulk row runs is delivered by a free
    thread at once; before, the bulk loop claimed again only when every row of its last
    claim had ended (one slow apple.push held the campaign's other rows back)."""
    import threading

    started, release, later = threading.Event(), threading.Event(), threading.Event()

    def long_wave(msg: handlers.Delivery) -> None:
        started.set()
        assert release.wait(120), "the test never released the long row"

    handlers.HANDLERS["test.long-bulk"] = long_wave
    handlers.HANDLERS["test.quick-bulk"] = lambda msg: None
    handlers.HANDLERS["test.later-bulk"] = lambda msg: later.set()
    w = worker.Worker(poll_seconds=0.05, bulk_poll_seconds=0.05, bulk_threads=2, run_periodic=False)
    try:
        with db.transaction() as session:  # claimed together
            enqueue(session, None, "test.long-bulk", {}, priority=BULK)
            enqueue(session, None, "test.quick-bulk", {}, priority=BULK)
        thread = w.start_thread()
        assert started.wait(60), "the long row was never claimed"
        with db.transaction() as session:
            enqueue(session, None, "test.later-bulk", {}, priority=BULK)
        delivered = later.wait(60)  # the long row runs until released below
        still_running = not release.is_set()
        assert delivered and still_running
    finally:
        release.set()
        w.stop()
        thread.join(timeout=60)
        for topic in ("test.long-bulk", "test.quick-bulk", "test.later-bulk"):
            handlers.HANDLERS.pop(topic)
    with db.read() as session:
        statuses = dict(
            session.execute(
                select(OutboxMessage.topic, OutboxMessage.status).where(
                    OutboxMessage.topic.in_(["test.long-bulk", "test.quick-bulk", "test.later-bulk"])
                )
            ).all()
        )
    assert statuses == {"test.long-bulk": "done", "test.quick-bulk": "done", "test.later-bulk": "done"}


def test_the_bulk_lane_outlives_a_failed_recording(monkeypatch: pytest.MonkeyPatch) -> None:
    """The database gone for a moment while the bulk loop records its outcomes: the row
    is delivered again when its lease runs out, and the lane goes on taking new rows
    (an error escaping `run_flowing` used to end the bulk loop's thread for good)."""
    import threading

    real_record, failed = worker.record, threading.Event()

    def record_once_failing(outcomes: list[worker.Outcome]) -> None:
        if not failed.is_set():
            failed.set()
            raise RuntimeError("the database went away")
        real_record(outcomes)

    monkeypatch.setattr(worker, "record", record_once_failing)
    first, second = threading.Event(), threading.Event()
    handlers.HANDLERS["test.first-bulk"] = lambda msg: first.set()
    handlers.HANDLERS["test.second-bulk"] = lambda msg: second.set()
    w = worker.Worker(poll_seconds=0.05, bulk_poll_seconds=0.05, bulk_threads=2, run_periodic=False)
    try:
        with db.transaction() as session:
            enqueue(session, None, "test.first-bulk", {}, priority=BULK)
        thread = w.start_thread()
        assert first.wait(60) and failed.wait(60)
        with db.transaction() as session:
            enqueue(session, None, "test.second-bulk", {}, priority=BULK)
        assert second.wait(60), "the bulk lane stopped after a failed recording"
    finally:
        w.stop()
        thread.join(timeout=60)
        for topic in ("test.first-bulk", "test.second-bulk"):
            handlers.HANDLERS.pop(topic)
