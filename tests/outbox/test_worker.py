"""The outbox worker: retries with backoff, dead letters, leases, at-least-once."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy import select, update

from loyalwallet import db
from loyalwallet.outbox import handlers, worker
from loyalwallet.outbox.models import OutboxMessage
from loyalwallet.outbox.service import enqueue


def _handles(topic: str) -> Callable[[handlers.Handler], handlers.Handler]:
    """A test topic's handler (the product lists its own in wiring.OUTBOX_HANDLERS)."""

    def put(fn: handlers.Handler) -> handlers.Handler:
        handlers.HANDLERS[topic] = fn
        return fn

    return put


def _due_now(ids: list[int]) -> None:
    with db.transaction() as session:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids))
            .values(next_attempt_at=db.utcnow() - dt.timedelta(seconds=1))
        )


def _rows(topic: str) -> list[OutboxMessage]:
    with db.read() as session:
        return list(
            session.scalars(
                select(OutboxMessage).where(OutboxMessage.topic == topic).order_by(OutboxMessage.id)
            )
        )


def test_retry_then_success_and_dead_letter() -> None:
    calls: dict[str, int] = {}

    @_handles("test.flaky")
    def flaky(msg: handlers.Delivery) -> None:
        calls[msg.payload["n"]] = calls.get(msg.payload["n"], 0) + 1
        if msg.payload["n"] == "ok-third" and msg.attempts < 3:
            raise RuntimeError("provider down")
        if msg.payload["n"] == "always":
            raise RuntimeError("still down")
        if msg.payload["n"] == "bad":
            raise handlers.Permanent("400 bad token")

    with db.transaction() as session:
        for n in ("ok-third", "always", "bad"):
            enqueue(session, None, "test.flaky", {"n": n}, max_attempts=4)
    for _ in range(6):
        worker.drain()
        _due_now([r.id for r in _rows("test.flaky") if r.status == "pending"])
    by_n = {r.payload["n"]: r for r in _rows("test.flaky")}
    assert by_n["ok-third"].status == "done" and by_n["ok-third"].attempts == 3
    assert (
        by_n["always"].status == "dead"
        and by_n["always"].attempts == 4
        and "still down" in by_n["always"].last_error
    )
    assert by_n["bad"].status == "dead" and by_n["bad"].attempts == 1
    assert calls == {"ok-third": 3, "always": 4, "bad": 1}


def test_backoff_grows_and_is_capped() -> None:
    assert 1.6 <= worker.backoff(1) <= 2.4
    assert worker.backoff(5) > worker.backoff(1)
    assert worker.backoff(50) <= 3600 * 1.2


def test_a_claimed_row_is_not_claimed_again_until_its_lease_ends() -> None:
    with db.transaction() as session:
        enqueue(session, None, "test.lease", {})
    first = [m for m in worker.claim(1000) if m.topic == "test.lease"]
    assert len(first) == 1
    assert not [m for m in worker.claim(1000) if m.topic == "test.lease"]
    # The worker died: after the lease the row is due again (at-least-once).
    later = db.utcnow() + worker.LEASE + dt.timedelta(seconds=1)
    again = [m for m in worker.claim(1000, now=later) if m.topic == "test.lease"]
    assert len(again) == 1 and again[0].attempts == 2


def test_a_fan_out_row_keeps_its_cause_s_place_in_the_queue() -> None:
    """enqueue(place=cause.created_at): the follow-up is claimed before rows queued after
    its cause, not behind the whole backlog (a campaign's pushes behind its messages)."""
    order: list[str] = []

    @_handles("test.cause")
    def cause(msg: handlers.Delivery) -> None:
        order.append("cause")
        with db.transaction() as session:
            enqueue(session, None, "test.order", {"n": "follow-up"}, place=msg.created_at)

    @_handles("test.order")
    def record(msg: handlers.Delivery) -> None:
        order.append(msg.payload["n"])

    with db.transaction() as session:
        enqueue(session, None, "test.cause", {})
    with db.transaction() as session:
        for n in range(3):
            enqueue(session, None, "test.order", {"n": f"backlog-{n}"})
    # Claimed one at a time (a worker takes the due rows in due order, batch by batch).
    while msgs := worker.claim(batch=1):
        worker.record([worker.attempt(msgs[0])])
    assert order == ["cause", "follow-up", "backlog-0", "backlog-1", "backlog-2"]
    [follow_up] = [r for r in _rows("test.order") if r.payload["n"] == "follow-up"]
    [first] = [r for r in _rows("test.cause")]
    assert follow_up.next_attempt_at == first.created_at


def test_a_rolled_back_savepoint_drops_only_its_own_rows() -> None:
    with db.transaction() as session:
        enqueue(session, None, "test.savepoint", {"n": "before"})
        try:
            with session.begin_nested():
                enqueue(session, None, "test.savepoint", {"n": "inside, rolled back"})
                raise RuntimeError("optional step failed")
        except RuntimeError:
            pass
        with session.begin_nested():
            enqueue(session, None, "test.savepoint", {"n": "inside, kept"})
        enqueue(session, None, "test.savepoint", {"n": "after"})
    assert [r.payload["n"] for r in _rows("test.savepoint")] == ["before", "inside, kept", "after"]
    try:
        with db.transaction() as session:
            enqueue(session, None, "test.savepoint", {"n": "rolled back with everything"})
            raise RuntimeError("the business transaction failed")
    except RuntimeError:
        pass
    with db.transaction() as session:
        session.execute(select(OutboxMessage.id).limit(1))  # a later transaction inherits nothing
    assert len(_rows("test.savepoint")) == 3
