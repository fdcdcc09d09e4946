"""The trigger schedule: due triggers are found by their next run time (an index), the
runs of many cafés spread over the minutes after the hour, and a wave goes in the
outbox's bulk lane (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy import select

from loyalwallet import db
from loyalwallet.campaigns import triggers
from loyalwallet.campaigns.models import Trigger
from loyalwallet.campaigns.rules import jitter_seconds, next_run, parse_params
from loyalwallet.merchants.actors import Actor
from loyalwallet.outbox.models import BULK, OutboxMessage
from support import Shop

MSK = ZoneInfo("Europe/Moscow")
MESSAGE = {"header": "Hi", "body": "Hello"}


def _at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 12, day, hour, minute, tzinfo=MSK).astimezone(dt.UTC)


def test_next_run_is_the_next_send_time_not_yet_run() -> None:
    params = parse_params("lapsed", {"message": MESSAGE, "send_at": "10:00", "days": 30})
    # 09:00: today's 10:00.
    assert next_run("lapsed", params, MSK, _at(7, 9), None) == _at(7, 10)
    # 10:30, not run today: due now.
    assert next_run("lapsed", params, MSK, _at(7, 10, 30), None) == _at(7, 10, 30)
    # 10:30, run today: tomorrow's 10:00.
    assert next_run("lapsed", params, MSK, _at(7, 10, 30), dt.date(2026, 12, 7)) == _at(8, 10)
    # A happy hour on Wednesdays only (9 Dec 2026 is a Wednesday).
    happy = parse_params(
        "happy_hour", {"message": MESSAGE, "start": "17:00", "end": "19:00", "weekdays": [3]}
    )
    assert next_run("happy_hour", happy, MSK, _at(7, 12), None) == _at(9, 17)
    assert next_run("happy_hour", happy, MSK, _at(9, 18), dt.date(2026, 12, 9)) == _at(16, 17)


def test_runs_of_many_cafes_spread_over_the_minutes_after_the_hour() -> None:
    offsets = [jitter_seconds(m, 600) for m in range(1, 1001)]
    assert all(0 <= o < 600 for o in offsets)
    per_minute = [sum(1 for o in offsets if int(o // 60) == m) for m in range(10)]
    assert min(per_minute) > 50  # about 100 a minute, not a thousand in the first
    assert jitter_seconds(7, 0) == 0


def test_the_schedule_reads_due_triggers_only_and_queues_the_wave_in_the_bulk_lane(shop: Shop) -> None:
    program = shop.program("bonus")
    shop.card(program)
    body = {"kind": "lapsed", "params": {"message": MESSAGE, "send_at": "00:00", "days": 30}}
    trig = shop.post("/api/v1/triggers", body, role="manager").json()
    with db.read() as session:
        t = session.get(Trigger, trig["id"])
        assert t is not None and t.next_run_at is not None  # looked at on the next tick
    assert triggers.schedule_due() >= 1
    with db.read() as session:
        t = session.get(Trigger, trig["id"])
        assert t is not None and t.next_run_at is not None and t.last_run_on is not None
        # Next: tomorrow's send time, plus this merchant's offset.
        assert t.next_run_at > db.utcnow()
        assert t.next_run_at - db.utcnow() <= dt.timedelta(days=1, seconds=triggers.JITTER_SECONDS)
        lanes = session.scalars(
            select(OutboxMessage.priority).where(
                OutboxMessage.topic == "trigger.run", OutboxMessage.merchant_id == shop.merchant_id
            )
        ).all()
    assert lanes == [BULK]
    # Until then it is not even read.
    assert triggers.schedule_due() == 0
    # Switched off: never looked at again; on again: looked at on the next tick.
    actor = Actor(merchant_id=shop.merchant_id, role="manager", kind="staff")
    with db.transaction() as session:
        triggers.change(session, actor, trig["id"], {"enabled": False})
    with db.read() as session:
        assert session.scalar(select(Trigger.next_run_at).where(Trigger.id == trig["id"])) is None
    with db.transaction() as session:
        triggers.change(session, actor, trig["id"], {"enabled": True})
    with db.read() as session:
        assert session.scalar(select(Trigger.next_run_at).where(Trigger.id == trig["id"])) is not None
    assert triggers.schedule_due() == 0  # looked at, but today's run is done
