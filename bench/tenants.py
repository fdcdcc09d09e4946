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

from benchkit import create_database, database_url, drop_database

TICK = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def setup(url: str, data_dir: Path | None = None, *, migrated: bool = False) -> Path:
    """This process on the database (migrated first unless `migrated`); returns the data
    directory (its secrets seal the guests' data: every builder process shares it)."""
    from loyalwallet import db, wiring
    from loyalwallet.config import Settings, configure, load_settings
    from loyalwallet.migrations import migrate

    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="lwtenants-"))
    s = configure(load_settings(data_dir, url))
    s = configure(Settings(**{**s.__dict__, "run_worker": False}))
    if not migrated:
        migrate(s.database_url)
    db.init_engine(s)
    wiring.install()
    return data_dir


PER_TRANSACTION = 100  # merchants built per transaction


def _guest_rows(session: Any, actor: Any, program: Any, phones: list[str], now: dt.datetime) -> list[Any]:
    """The rows `cards.service.enroll` writes for a new guest (no welcome gift in this
    programme): the customer (customers.service.get_or_create), the card
    (cards.service.new_card), its audit line and its card.created event, made with the
    same helpers but added together, so they go in one INSERT per table instead of
    ~7 round trips per guest. `build` checks them against rows `enroll` made."""
    from loyalwallet import crypto
    from loyalwallet.cards.codes import new_code
    from loyalwallet.cards.models import Card
    from loyalwallet.customers.models import Customer
    from loyalwallet.customers.service import _seal, phone_index
    from loyalwallet.merchants.service import audit
    from loyalwallet.outbox.service import emit_event
    from loyalwallet.programs.rules import initial_tier
    from loyalwallet.programs.service import rules_of

    mid = program.merchant_id
    customers = [
        Customer(
            merchant_id=mid,
            phone_index=phone_index(mid, phone),
            created_at=now,
            phone_enc=_seal(mid, "phone", phone),
        )
        for phone in phones
    ]
    session.add_all(customers)
    session.flush()
    tier = initial_tier(rules_of(program))
    cards = []
    for customer in customers:
        card = Card(
            merchant_id=mid,
            program_id=program.id,
            customer_id=customer.id,
            code=new_code(),
            serial=crypto.token(16),
            auth_token=crypto.token(24),
            public_token=crypto.token(24),
            status="active",
            balance=0,
            stamps=0,
            tier=tier,
            spend=0,
            visits=0,
            channel=None,
            version=1,
            pass_updated_at=now,
            created_at=now,
            updated_at=now,
        )
        cards.append(card)
        audit(session, actor, "card.create", "card", card.code, {"program_id": program.id})
        emit_event(session, mid, "card.created", {"code": card.code, "program_id": program.id})
    session.add_all(cards)
    return cards


def _row_shape(row: Any) -> dict[str, bool]:
    """Which columns a row filled (values differ between guests; the shape must not)."""
    return {c.key: getattr(row, c.key) is not None for c in row.__table__.columns}


def _build_slice(url: str, data_dir: str, first: int, last: int, cards: int) -> None:
    """A builder process (multiprocessing, spawned): merchants first..last-1."""
    setup(url, Path(data_dir), migrated=True)
    _build_range(first, last, cards)


def build(n: int, cards: int, processes: int = 1) -> float:
    """N merchants (`_build_range`), split over `processes` processes (each its own
    connection: the build waits on round trips, not on one CPU). Returns seconds taken."""
    import multiprocessing

    from sqlalchemy import update

    from loyalwallet import db
    from loyalwallet.campaigns.models import Trigger
    from loyalwallet.cards.models import Card
    from loyalwallet.config import get_settings
    from loyalwallet.customers.models import Customer

    started = time.perf_counter()
    step = -(-n // max(1, processes))
    if processes <= 1 or n <= PER_TRANSACTION:
        _build_range(0, n, cards)
    else:
        # Merchant 0 (enroll's rows, the check) first, then the slices side by side.
        _build_range(0, PER_TRANSACTION, cards)
        settings = get_settings()
        spawn = multiprocessing.get_context("spawn")
        with spawn.Pool(processes) as pool:
            slices = [(lo, min(n, lo + step)) for lo in range(PER_TRANSACTION, n, step)]
            pool.starmap(
                _build_slice,
                [(settings.database_url, str(settings.data_dir), lo, hi, cards) for lo, hi in slices],
            )
    with db.transaction() as session:  # the guests last came 40 days ago and take news
        session.execute(update(Card).values(last_visit_at=db.utcnow() - dt.timedelta(days=40), visits=1))
        session.execute(update(Customer).values(marketing_consent=True))
        # Today's 10:00 runs made (Moscow's date): next look tomorrow.
        today = (db.utcnow() + dt.timedelta(hours=3)).date()
        session.execute(update(Trigger).values(last_run_on=today))
    return time.perf_counter() - started


def _build_range(first_merchant: int, last: int, cards: int) -> None:
    """Merchants first_merchant..last-1 through the services (merchant, programme, two triggers: the service
    functions, PER_TRANSACTION merchants a transaction); the guests of merchant 0 through
    `enroll`, the others' as the same rows added in bulk (`_guest_rows`, checked against
    merchant 0's). Today's trigger runs count as made (a built installation is idle until
    tomorrow's 10:00; the wave sets them due)."""
    from sqlalchemy import select

    from loyalwallet import db
    from loyalwallet.campaigns import triggers
    from loyalwallet.cards.models import Card
    from loyalwallet.cards.service import enroll
    from loyalwallet.customers.models import Customer
    from loyalwallet.customers.service import GuestData
    from loyalwallet.merchants.actors import system
    from loyalwallet.merchants.service import create_merchant
    from loyalwallet.programs.service import create_program

    message = {"header": "Hi", "body": "We miss you"}
    for first in range(first_merchant, last, PER_TRANSACTION):
        with db.transaction() as session:
            now = db.utcnow()
            for i in range(first, min(last, first + PER_TRANSACTION)):
                merchant = create_merchant(session, f"Café {i}", timezone="Europe/Moscow")
                actor = system(merchant.id)
                program = create_program(
                    session,
                    actor,
                    "bonus",
                    "Bonus",
                    {"tiers": [{"name": "Base", "min_spend": 0, "cashback_pct": 5}]},
                )
                triggers.create(
                    session, actor, "birthday", "Birthday", {"message": message, "send_at": "10:00"}
                )
                triggers.create(
                    session, actor, "lapsed", "Lapsed", {"message": message, "send_at": "10:00", "days": 30}
                )
                phones = [f"+7916{i:04d}{j:03d}"[:12] for j in range(cards)]
                if i == 0:
                    for phone in phones:
                        enroll(session, actor, program, GuestData(phone=phone))
                else:
                    _guest_rows(session, actor, program, phones, now)
            session.flush()
        if first == 0 and last > 1 and cards:
            with db.read() as session:  # the bulk rows fill the same columns as enroll's
                for model in (Card, Customer):
                    rows = session.scalars(select(model).order_by(model.id)).all()
                    shapes = {str(_row_shape(r)) for r in rows}
                    assert len(shapes) == 1, (model, shapes)


def catch_up() -> None:
    """What a worker does once after an upgrade or a bulk import: every snapshot, every
    trigger scheduled."""
    from concurrent.futures import ThreadPoolExecutor

    from loyalwallet.analytics import rollup, snapshot
    from loyalwallet.campaigns import triggers
    from loyalwallet.outbox import worker

    while snapshot.refresh_changed(settle=dt.timedelta(0)):
        pass
    rollup.catch_up(settle=dt.timedelta(0))
    triggers.schedule_due(max_batches=1_000_000)  # every trigger's next run, not 10,000 a run
    # The guests' card.created events (5 a merchant): as a worker's threads take them.
    with ThreadPoolExecutor(4) as pool:
        while worker.run_once(200, pool):
            pass


def _kept_data_dir(name: str) -> Path:
    """A kept database's data directory (its secrets sealed the guests' data)."""
    path = Path(tempfile.gettempdir()) / f"lwtenants-{name}"
    path.mkdir(exist_ok=True)
    return path


def _is_built(name: str, n: int) -> bool:
    """The kept database exists, its build finished (the marker) for `n` merchants, and
    its data directory is still there."""
    import psycopg

    from benchkit import SERVER

    with psycopg.connect(SERVER, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return False
    if not (Path(tempfile.gettempdir()) / f"lwtenants-{name}").is_dir():
        return False
    with psycopg.connect(database_url(name), autocommit=True) as conn:
        row = conn.execute("SELECT obj_description('merchants'::regclass)").fetchone()
    return bool(row and row[0] == f"lwtenants built: {n} merchants")


def _mark_built(name: str, n: int) -> None:
    import psycopg

    with psycopg.connect(database_url(name), autocommit=True) as conn:
        conn.execute(f"COMMENT ON TABLE merchants IS 'lwtenants built: {n} merchants'")
    _vacuum(name)


def _vacuum(name: str) -> None:
    """VACUUM ANALYZE after the build, as on an installation that has run a while: else
    autovacuum and autoanalyze of the freshly written tables (tens of thousands of rows at
    10,000 merchants) run during the idle rounds and count as the database's idle CPU."""
    import psycopg

    with psycopg.connect(database_url(name), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


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


class StatementLog:
    """Per statement text (numbers and lists of literals folded): count, seconds between
    sending it and its result, rows returned or changed (the cursor's rowcount)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.stats: dict[str, list[float]] = {}
        self.samples: dict[str, tuple[str, Any]] = {}  # one (statement, parameters) per key

    def before(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        conn.info.setdefault("lw_started", []).append(time.perf_counter())

    def after(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        import re

        took = time.perf_counter() - conn.info["lw_started"].pop()
        key = re.sub(r"\s+", " ", re.sub(r"%\(\w+\)s(, %\(\w+\)s)*", "?", statement))[:2000]
        rows = max(0, cursor.rowcount or 0)
        with self.lock:
            self.samples.setdefault(key, (statement, args[0] if args else None))
            entry = self.stats.setdefault(key, [0, 0.0, 0])
            entry[0] += 1
            entry[1] += took
            entry[2] += rows

    def explain(self, path: Path) -> None:
        """EXPLAIN (ANALYZE, BUFFERS) of one sample of each statement, in a transaction
        rolled back (the writes too): the buffers and rows each one reads at this size."""
        from loyalwallet import db

        raw = db.get_engine().raw_connection()
        try:
            cursor = raw.cursor()
            with path.open("w") as out:
                for key, (statement, params) in self.samples.items():
                    if (
                        not statement.lstrip()
                        .upper()
                        .startswith(("SELECT", "UPDATE", "DELETE", "INSERT", "WITH"))
                    ):
                        continue
                    try:
                        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, params)
                        plan = "\n".join(r[0] for r in cursor.fetchall())
                    except Exception as exc:  # a statement EXPLAIN cannot take: noted, not fatal
                        plan = f"(not explained: {exc!r})"
                    raw.rollback()
                    out.write(f"=== {key}\n{plan}\n\n")
        finally:
            raw.close()

    def report(self, path: Path, minutes: float) -> None:
        ordered = sorted(self.stats.items(), key=lambda kv: -kv[1][1])
        with path.open("w") as out:
            out.write("per minute: calls, ms, rows | statement\n")
            for key, (calls, took, rows) in ordered:
                out.write(
                    f"{calls / minutes:8.1f} {took * 1000 / minutes:9.1f} {rows / minutes:10.1f} | {key}\n"
                )


def profile_idle(db_name: str, seconds: float, out_dir: Path, n: int) -> None:
    """The idle worker for `seconds` under cProfile (every thread it starts) and the
    statement log; written to out_dir/idle-<n>.prof, idle-<n>.txt, statements-<n>.txt.
    Profiling slows the worker: read where the time goes, not the CPU figures."""
    import cProfile
    import pstats

    from sqlalchemy import event

    from loyalwallet import db
    from loyalwallet.outbox.worker import Worker

    profiles: list[cProfile.Profile] = []
    original_run = threading.Thread.run

    def run(self: threading.Thread) -> None:
        prof = cProfile.Profile()
        profiles.append(prof)
        prof.enable()
        try:
            original_run(self)
        finally:
            prof.disable()

    log = StatementLog()
    engine = db.get_engine()
    event.listen(engine, "before_cursor_execute", log.before)
    event.listen(engine, "after_cursor_execute", log.after)
    threading.Thread.run = run  # type: ignore[method-assign]
    w = Worker()
    cpu0 = time.process_time()
    thread = w.start_thread()
    try:
        time.sleep(seconds)
    finally:
        w.stop()
        thread.join(timeout=60)
        threading.Thread.run = original_run  # type: ignore[method-assign]
        event.remove(engine, "before_cursor_execute", log.before)
        event.remove(engine, "after_cursor_execute", log.after)
    cpu = time.process_time() - cpu0
    out_dir.mkdir(parents=True, exist_ok=True)
    stats = pstats.Stats(*profiles) if profiles else None
    if stats is not None:
        stats.dump_stats(str(out_dir / f"idle-{n}.prof"))
        with (out_dir / f"idle-{n}.txt").open("w") as out:
            stats.stream = out  # type: ignore[attr-defined]
            stats.sort_stats("tottime").print_stats(60)
            stats.sort_stats("cumulative").print_stats(80)
    log.report(out_dir / f"statements-{n}.txt", seconds / 60)
    log.explain(out_dir / f"plans-{n}.txt")
    print(f"  profiled {n}: {cpu:.2f} s CPU (profiled) in {seconds:.0f} s -> {out_dir}", flush=True)


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


def _one_loop(w: Any) -> threading.Thread:
    """The worker before issue 19's lanes had their own loops (the baseline): one claim
    loop for both lanes (outbox.worker.run_once with no lane), periodic jobs apart."""
    from concurrent.futures import ThreadPoolExecutor

    from loyalwallet.outbox import worker

    def loop() -> None:
        periodic = threading.Thread(target=w._periodic_loop, daemon=True)
        periodic.start()
        with ThreadPoolExecutor(w.threads) as pool:
            while not w.stop_event.is_set():
                if worker.run_once(w.batch, pool) == 0:
                    w.stop_event.wait(w.poll_seconds)
        periodic.join(timeout=30)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def wave(cards: int, one_loop: bool = False, seconds_cap: float = 600) -> dict[str, Any]:
    """Every lapsed trigger due now (their jitter spreads them over a minute); purchases
    meanwhile. `one_loop`: with the baseline worker (`_one_loop`)."""
    from sqlalchemy import delete, func, select

    from loyalwallet import db
    from loyalwallet.campaigns.models import Trigger, TriggerFiring
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
        # at once plus each merchant's jitter; no guest messaged yet (a second wave).
        lapsed = select(Trigger.id).where(Trigger.kind == "lapsed")
        session.execute(delete(TriggerFiring).where(TriggerFiring.trigger_id.in_(lapsed)))
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
    thread = _one_loop(w) if one_loop else w.start_thread()
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
    parser.add_argument("--build-processes", type=int, default=4)
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="instead of the idle rounds: one run of --seconds under cProfile and a statement log, written to DIR",
    )
    parser.add_argument(
        "--keep",
        metavar="PREFIX",
        help="build each size into database PREFIX_<size> and keep it; a later run with the same "
        "PREFIX reuses a complete one (no build). Its data directory: /tmp/lwtenants-PREFIX_<size>",
    )
    parser.add_argument(
        "--wave-baseline", action="store_true", help="first a wave with the one-loop worker (before issue 19)"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    table: dict[int, list[dict[str, float]]] = {}
    waves: dict[str, dict[str, Any]] = {}
    for n in sizes:
        kept = f"{args.keep}_{n}" if args.keep else None
        reused = kept is not None and _is_built(kept, n)
        if kept is None:
            url, name = create_database("lwtenants")
        elif reused:
            url, name = database_url(kept), kept
        else:
            drop_database(kept)
            url, name = create_database(kept, exact=True)
        try:
            if reused:
                setup(url, _kept_data_dir(name), migrated=True)
                print(f"{n} merchants: reusing {name}", flush=True)
            else:
                setup(url, _kept_data_dir(name) if kept else None)
                took = build(n, args.cards, args.build_processes)
                catch_up()
                if kept:
                    _mark_built(name, n)
                else:
                    _vacuum(name)
                print(
                    f"{n} merchants built in {took:.0f} s" + (f" (kept: {name})" if kept else ""), flush=True
                )
            if args.profile:
                profile_idle(name, args.seconds, Path(args.profile), n)
                continue
            rounds = idle(name, args.seconds, args.rounds)
            table.setdefault(n, []).extend(rounds)  # a size given twice (10,10000,10,10000): all its rounds
            for r in rounds:
                print(f"  idle {n}: " + ", ".join(f"{k} {v:.2f}" for k, v in r.items()), flush=True)
            if not args.no_wave and n == args.wave_merchants:
                if args.wave_baseline:
                    waves["one claim loop (baseline)"] = wave(args.cards, one_loop=True)
                waves["a loop per lane"] = wave(args.cards)
        finally:
            from loyalwallet import db

            db.get_engine().dispose()
            if kept is None:
                drop_database(name)
    if not table:
        return
    base = sizes[0]
    print()
    print(
        "| merchants | worker CPU s/min | PostgreSQL CPU s/min | transactions/min | worker statements/min | ratio of medians (worker CPU, PostgreSQL CPU, statements) vs",
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
            f"{med['worker_cpu'] / max(b['worker_cpu'], 1e-9):.2f}x, {med['pg_cpu'] / max(b['pg_cpu'], 1e-9):.2f}x, "
            f"{med['statements'] / max(b['statements'], 1e-9):.2f}x |"
        )
    for label, w in waves.items():
        print()
        print(
            f"wave at {args.wave_merchants:,} merchants, {label} ({args.cards} lapsed guests each, jitter "
            f"{os.environ['LOYALWALLET_TRIGGER_JITTER_SECONDS']} s): drained in {w['drain_seconds']:.0f} s, "
            f"{w['bulk_rows']} bulk rows"
        )
        print(
            f"  purchases during the wave: {w['purchases']}; card update delay s (min/median/max): "
            f"{_fmt(w['card_update_delay'])}"
        )
        print(f"  oldest due pending row s (min/median/max): {_fmt(w['oldest_pending'])}")


if __name__ == "__main__":
    main()
