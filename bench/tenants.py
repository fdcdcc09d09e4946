"""Many merchants on one installation: the idle cost per minute and a 10:00 trigger wave.

    .venv/bin/python bench/tenants.py                        # 10 and 1,000 merchants, then the wave
    .venv/bin/python bench/tenants.py --sizes 10,1000,10000  # and 10,000 (building takes minutes)
    .venv/bin/python bench/tenants.py --seconds 60 --cards 5 --rounds 2

For each size, in a fresh PostgreSQL database (127.0.0.1:5432): N merchants built through
the services (a bonus programme, a birthday and a lapsed trigger, `--cards` guests each),
the one-off catch-up done (snapshots, trigger schedule), then the product's worker
(outbox.worker.Worker, periodic jobs included) runs in a thread of this process with no
traffic at all for `--seconds`, `--rounds` times. Measured per minute: the worker's CPU
(this process; nothing else runs in it meanwhile), the CPU of the database's server
backends (/proc of the pg_stat_activity pids), transactions (pg_stat_database) and the
statements the worker sent (counted on the engine). Printed as ratios against the
smallest size measured in the same run (min/median/max over the rounds).

The wave (`--wave-merchants`, 1,000 by default): every merchant's lapsed trigger comes
due at once (as at 10:00 in one time zone; each merchant's run offset by its jitter,
LOYALWALLET_TRIGGER_JITTER_SECONDS, set to 60 here to keep the run short), each with
`--cards` lapsed guests. Meanwhile a purchase is made every second at a merchant of the
wave; measured: the delay of each purchase's card update (its card.changed row, from
queued to delivered), the oldest due pending row sampled every second, and the time until
the wave has drained.

The machine is shared (2 cores, other people's test suites): the runs are kept short and
the figures are noisy; compare ratios within one run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

os.environ.setdefault("LOYALWALLET_TRIGGER_JITTER_SECONDS", "60")
os.environ.setdefault("LOYALWALLET_WORKER_THREADS", "4")

from benchkit import create_database, drop_database

TICK = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def setup(url: str) -> None:
    from loyalwallet import db, wiring
    from loyalwallet.config import Settings, configure, load_settings
    from loyalwallet.migrations import migrate

    s = configure(load_settings(Path(tempfile.mkdtemp(prefix="lwtenants-")), url))
    s = configure(Settings(**{**s.__dict__, "run_worker": False}))
    migrate(s.database_url)
    db.init_engine(s)
    wiring.install()


def build(n: int, cards: int) -> float:
    """N merchants through the services; returns seconds taken."""
    from sqlalchemy import update

    from loyalwallet import db
    from loyalwallet.campaigns import triggers
    from loyalwallet.cards.models import Card
    from loyalwallet.cards.service import enroll
    from loyalwallet.customers.models import Customer
    from loyalwallet.customers.service import GuestData
    from loyalwallet.merchants.actors import system
    from loyalwallet.merchants.service import create_merchant
    from loyalwallet.programs.service import create_program

    started = time.perf_counter()
    message = {"header": "Hi", "body": "We miss you"}
    for i in range(n):
        with db.transaction() as session:
            merchant = create_merchant(session, f"Café {i}", timezone="Europe/Moscow")
            actor = system(merchant.id)
            program = create_program(
                session,
                actor,
                "bonus",
                "Bonus",
                {"tiers": [{"name": "Base", "min_spend": 0, "cashback_pct": 5}]},
            )
            triggers.create(session, actor, "birthday", "Birthday", {"message": message, "send_at": "10:00"})
            triggers.create(
                session, actor, "lapsed", "Lapsed", {"message": message, "send_at": "10:00", "days": 30}
            )
            for j in range(cards):
                enroll(session, actor, program, GuestData(phone=f"+7916{i:04d}{j:03d}"[:12]))
    with db.transaction() as session:  # the guests last came 40 days ago and take news
        session.execute(update(Card).values(last_visit_at=db.utcnow() - dt.timedelta(days=40), visits=1))
        session.execute(update(Customer).values(marketing_consent=True))
    return time.perf_counter() - started


def catch_up() -> None:
    """What a worker does once after an upgrade or a bulk import: every snapshot, every
    trigger scheduled."""
    from loyalwallet.analytics import rollup, snapshot
    from loyalwallet.campaigns import triggers
    from loyalwallet.outbox import worker

    while snapshot.refresh_changed(settle=dt.timedelta(0)):
        pass
    rollup.catch_up(settle=dt.timedelta(0))
    triggers.schedule_due()
    worker.drain(max_rounds=10_000)


class Counter:
    def __init__(self) -> None:
        self.statements = 0
        self.lock = threading.Lock()

    def __call__(self, *args: Any) -> None:
        with self.lock:
            self.statements += 1


def _pg(db_name: str) -> tuple[list[int], int]:
    import psycopg

    from benchkit import SERVER

    with psycopg.connect(SERVER, autocommit=True) as conn:
        pids = [
            r[0]
            for r in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s", (db_name,)
            ).fetchall()
        ]
        xacts = conn.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s", (db_name,)
        ).fetchone()
    return pids, int(xacts[0]) if xacts else 0


def idle(db_name: str, seconds: float, rounds: int) -> list[dict[str, float]]:
    from sqlalchemy import event

    from loyalwallet import db
    from loyalwallet.outbox.worker import Worker

    counter = Counter()
    event.listen(db.get_engine(), "before_cursor_execute", counter)
    w = Worker()
    thread = w.start_thread()
    time.sleep(3)  # the first look of every periodic job
    results = []
    try:
        for _ in range(rounds):
            pids, x0 = _pg(db_name)
            pg0 = {pid: _proc_cpu(pid) for pid in pids}
            s0, c0, t0 = counter.statements, time.process_time(), time.monotonic()
            time.sleep(seconds)
            elapsed = time.monotonic() - t0
            cpu = time.process_time() - c0
            statements = counter.statements - s0
            pids2, x1 = _pg(db_name)
            pg = sum(_proc_cpu(pid) - pg0.get(pid, 0.0) for pid in pids2)
            per_min = 60.0 / elapsed
            results.append(
                {
                    "worker_cpu": cpu * per_min,
                    "pg_cpu": pg * per_min,
                    "xacts": (x1 - x0) * per_min,
                    "statements": statements * per_min,
                }
            )
    finally:
        w.stop()
        thread.join(timeout=60)
        event.remove(db.get_engine(), "before_cursor_execute", counter)
    return results


def wave(cards: int, seconds_cap: float = 600) -> dict[str, Any]:
    """Every lapsed trigger due now (their jitter spreads them over a minute); purchases
    meanwhile."""
    from sqlalchemy import func, select

    from loyalwallet import db
    from loyalwallet.campaigns.models import Trigger
    from loyalwallet.campaigns.rules import jitter_seconds
    from loyalwallet.campaigns.triggers import JITTER_SECONDS
    from loyalwallet.cards.models import Card
    from loyalwallet.checkout.schemas import PurchaseIn
    from loyalwallet.checkout.service import purchase
    from loyalwallet.merchants.actors import system
    from loyalwallet.outbox.models import BULK, OutboxMessage
    from loyalwallet.outbox.worker import Worker

    now = db.utcnow()
    with db.transaction() as session:
        # As if it were 10:00 now: the send time has come, today's run not made yet, due
        # at once plus each merchant's jitter.
        for t in session.scalars(select(Trigger).where(Trigger.kind == "lapsed")):
            t.params = {**t.params, "send_at": "00:00"}
            t.last_run_on = None
            t.next_run_at = now + dt.timedelta(seconds=jitter_seconds(t.merchant_id, JITTER_SECONDS))
        buyers = session.execute(
            select(Card.merchant_id, func.min(Card.code))
            .group_by(Card.merchant_id)
            .order_by(Card.merchant_id)
        ).all()
        start_id = session.scalar(select(func.coalesce(func.max(OutboxMessage.id), 0)))
    w = Worker()
    thread = w.start_thread()
    started = time.monotonic()
    oldest: list[float] = []
    codes: list[str] = []
    i = 0
    try:
        while time.monotonic() - started < seconds_cap:
            merchant_id, code = buyers[(i * 37) % len(buyers)]
            with db.transaction() as session:
                purchase(session, system(merchant_id), PurchaseIn(card=code, amount=10_000), f"wave-{i}")
            codes.append(code)
            i += 1
            with db.read() as session:
                age = session.scalar(
                    select(func.min(OutboxMessage.next_attempt_at)).where(
                        OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= db.utcnow()
                    )
                )
                left = session.scalar(
                    select(func.count()).where(
                        OutboxMessage.status == "pending",
                        OutboxMessage.id > start_id,
                        OutboxMessage.priority == BULK,
                        OutboxMessage.next_attempt_at <= db.utcnow(),
                    )
                )
                fired = session.scalar(
                    select(func.count())
                    .select_from(Trigger)
                    .where(Trigger.kind == "lapsed", Trigger.last_run_on.is_(None))
                )
            oldest.append(0.0 if age is None else (db.utcnow() - age).total_seconds())
            if i % 10 == 0:
                print(
                    f"    wave t={time.monotonic() - started:.0f}s: {fired} triggers to run, {left} rows due",
                    flush=True,
                )
            if left == 0 and fired == 0:
                break
            time.sleep(1.0)
        drained = time.monotonic() - started
        time.sleep(2)
    finally:
        w.stop()
        thread.join(timeout=60)
    with db.read() as session:
        rows = session.execute(
            select(OutboxMessage.created_at, OutboxMessage.delivered_at, OutboxMessage.payload).where(
                OutboxMessage.id > start_id,
                OutboxMessage.topic == "card.changed",
                OutboxMessage.priority == 0,
            )
        ).all()
        bulk = session.scalar(
            select(func.count()).where(OutboxMessage.id > start_id, OutboxMessage.priority == 1)
        )
    delays = [(d - c).total_seconds() for c, d, _ in rows if d is not None]
    return {
        "purchases": len(codes),
        "card_update_delay": delays,
        "oldest_pending": oldest,
        "drain_seconds": drained,
        "bulk_rows": bulk,
    }


def _fmt(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10,1000")
    parser.add_argument("--cards", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--wave-merchants", type=int, default=1000)
    parser.add_argument("--no-wave", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    table: dict[int, list[dict[str, float]]] = {}
    wave_result = None
    for n in sizes:
        url, name = create_database("lwtenants")
        try:
            setup(url)
            took = build(n, args.cards)
            catch_up()
            print(f"{n} merchants built in {took:.0f} s", flush=True)
            table[n] = idle(name, args.seconds, args.rounds)
            for r in table[n]:
                print(f"  idle {n}: " + ", ".join(f"{k} {v:.2f}" for k, v in r.items()), flush=True)
            if not args.no_wave and n == args.wave_merchants:
                wave_result = wave(args.cards)
        finally:
            from loyalwallet import db

            db.get_engine().dispose()
            drop_database(name)
    base = sizes[0]
    print()
    print(
        "| merchants | worker CPU s/min | PostgreSQL CPU s/min | transactions/min | worker statements/min | ratio (worker CPU, statements) vs",
        base,
        "|",
    )
    print("|---|---|---|---|---|---|")
    for n, rows in table.items():
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        b = {k: statistics.median(r[k] for r in table[base]) for k in rows[0]}
        print(
            f"| {n:,} | {_fmt([r['worker_cpu'] for r in rows])} | {_fmt([r['pg_cpu'] for r in rows])} | "
            f"{_fmt([r['xacts'] for r in rows])} | {_fmt([r['statements'] for r in rows])} | "
            f"{med['worker_cpu'] / max(b['worker_cpu'], 1e-9):.2f}x, {med['statements'] / max(b['statements'], 1e-9):.2f}x |"
        )
    if wave_result:
        print()
        print(
            f"wave at {args.wave_merchants:,} merchants ({args.cards} lapsed guests each, jitter "
            f"{os.environ['LOYALWALLET_TRIGGER_JITTER_SECONDS']} s): drained in {wave_result['drain_seconds']:.0f} s, "
            f"{wave_result['bulk_rows']} bulk rows"
        )
        print(
            f"  purchases during the wave: {wave_result['purchases']}; card update delay s (min/median/max): "
            f"{_fmt(wave_result['card_update_delay'])}"
        )
        print(f"  oldest due pending row s (min/median/max): {_fmt(wave_result['oldest_pending'])}")


if __name__ == "__main__":
    main()
