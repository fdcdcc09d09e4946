"""Checkout throughput: POST /api/v1/purchases over HTTP vs the raw SQL accrual transaction.

Both sides run in the same process run, on the same PostgreSQL, with the same number of
concurrent clients, alternating in every round, so the ratio is meaningful on a noisy
machine:

- raw:  BEGIN; SELECT ... FROM cards WHERE id = $1 FOR UPDATE; UPDATE cards SET balance ...;
        INSERT INTO ledger_entries ...; COMMIT   (psycopg, one connection per client)
- http: N `loyalwallet serve` processes, each on its own port; the clients' keep-alive
        connections are dealt round-robin over them (an exactly even split, checked in
        /proc/net/tcp before each round: a lopsided round is refused). Each purchase has a
        fresh Idempotency-Key.

Per round it prints both rates, p50/p99, and CPU per purchase read from /proc: the
server processes, their PostgreSQL backends (pg_stat_activity of the bench database),
the load generator; and the share of the machine's CPU used by everything else (other
engineers' tests), so a round on a busy machine is visible as such. At the end: min /
median / max over the rounds, and `loyalwallet check-ledger` on the database.

Usage:  .venv/bin/python bench/checkout.py [--rounds 5] [--seconds 10] [--clients 16] [--cards 20000] [--workers 2]
Needs PostgreSQL at 127.0.0.1:5432 (trust auth); creates and drops its own database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg

from benchkit import create_database, drop_database, free_port

ROOT = Path(__file__).resolve().parents[1]


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] if values else float("nan")


def seed(url: str, data_dir: str, n_cards: int) -> tuple[str, list[str], list[int]]:
    """A merchant, a bonus program, n cards. Returns (cashier key, codes, card ids)."""
    env = {**os.environ, "LOYALWALLET_DATABASE_URL": url, "LOYALWALLET_DATA_DIR": data_dir}
    script = f"""
import json
from loyalwallet import db, wiring
from loyalwallet.config import configure, load_settings
from loyalwallet.migrations import migrate
from loyalwallet.merchants.actors import system
from loyalwallet.merchants.service import create_merchant, create_api_key
from loyalwallet.programs.service import create_program
from loyalwallet.cards.service import new_card
s = configure(load_settings())
migrate(s.database_url)
db.init_engine(s)
wiring.install()  # as every entry point: handlers, hooks, wallet sources
with db.transaction() as session:
    m = create_merchant(session, "Bench café")
    p = create_program(session, system(m.id), "bonus", "Bench", {{"tiers": [{{"name": "A", "min_spend": 0, "cashback_pct": 5}}]}})
    _, key = create_api_key(session, m.id, "bench", "cashier")
    cards = [new_card(session, p, None) for _ in range({n_cards})]
    print(json.dumps({{"key": key, "codes": [c.code for c in cards], "ids": [c.id for c in cards]}}))
"""
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return data["key"], data["codes"], data["ids"]


# --- raw SQL baseline ---------------------------------------------------------------------


def run_raw(
    url: str,
    card_ids: list[int],
    merchant_id: int,
    clients: int,
    seconds: float,
    meter: Callable[[], Meter] | None = None,
) -> tuple[int, list[float], dict[str, float] | None]:
    """The raw accrual transaction from `clients` threads for `seconds`. With `meter`,
    the CPU of the clients' backends is measured over the run (connections open)."""
    latencies: list[float] = []
    lock = threading.Lock()
    connected = threading.Barrier(clients + 1)
    ready = threading.Barrier(clients + 1)
    done = threading.Barrier(clients + 1)
    box: list[float] = []

    def client(i: int) -> None:
        mine: list[float] = []
        with psycopg.connect(url, prepare_threshold=1) as conn:
            connected.wait()
            ready.wait()
            stop = box[0]
            n = i
            while time.monotonic() < stop:
                card_id = card_ids[n % len(card_ids)]
                n += clients
                t0 = time.perf_counter()
                with conn.transaction():
                    conn.execute("SELECT balance FROM cards WHERE id = %s FOR UPDATE", (card_id,))
                    conn.execute("UPDATE cards SET balance = balance + %s WHERE id = %s", (5, card_id))
                    conn.execute(
                        "INSERT INTO ledger_entries (merchant_id, card_id, kind, points, remaining, created_at) "
                        "VALUES (%s, %s, 'accrual', %s, %s, now())",
                        (merchant_id, card_id, 5, 5),
                    )
                mine.append(time.perf_counter() - t0)
            with lock:
                latencies.extend(mine)
            done.wait()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    connected.wait()
    m = meter() if meter else None
    box.append(time.monotonic() + seconds)
    if m:
        m.start()
    ready.wait()
    done.wait()
    got = m.stop() if m else None
    for t in threads:
        t.join()
    return len(latencies), latencies, got


# --- HTTP path ----------------------------------------------------------------------------


class StopBox:
    stop = 0.0  # set once every client is connected


async def http_client(
    port: int,
    key: str,
    codes: list[str],
    start: int,
    step: int,
    box: StopBox,
    out: list[float],
    errors: list[str],
    connected: asyncio.Event,
    opened: list[int],
) -> None:
    """A minimal keep-alive HTTP/1.1 client: cheap enough not to steal the server's CPU."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    opened.append(1)
    await connected.wait()
    stop = box.stop
    n = start
    while time.monotonic() < stop:
        code = codes[n % len(codes)]
        n += step
        body = json.dumps({"card": code, "amount": 35_000}).encode()
        head = (
            f"POST /api/v1/purchases HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {key}\r\n"
            f"Idempotency-Key: {uuid.uuid4().hex}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        t0 = time.perf_counter()
        writer.write(head + body)
        status_line = await reader.readline()
        length = 0
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        payload = await reader.readexactly(length)
        out.append(time.perf_counter() - t0)
        if b" 201 " not in status_line:
            errors.append(status_line.decode().strip() + " " + payload[:200].decode(errors="replace"))
    writer.close()


def run_http(
    ports: list[int],
    key: str,
    codes: list[str],
    clients: int,
    seconds: float,
    servers: dict[int, int],
    splits: list[dict[int, int]],
) -> tuple[int, list[float], list[str]]:
    """`clients` keep-alive connections dealt round-robin over the servers' ports. The
    split is read from /proc once all are connected and a lopsided one is refused."""
    latencies: list[float] = []
    errors: list[str] = []

    async def main() -> None:
        connected = asyncio.Event()
        opened: list[int] = []
        box = StopBox()
        tasks = []
        for i in range(clients):
            tasks.append(
                asyncio.ensure_future(
                    http_client(
                        ports[i % len(ports)],
                        key,
                        codes,
                        i,
                        clients,
                        box,
                        latencies,
                        errors,
                        connected,
                        opened,
                    )
                )
            )
        while len(opened) < clients:
            for t in tasks:
                if t.done() and t.exception() is not None:
                    raise SystemExit(f"a client could not connect: {t.exception()!r}")
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # let the servers accept
        split = connection_split(servers)
        splits.append(split)
        want = clients // len(servers)
        if any(abs(count - want) > 0 for count in split.values()):
            for t in tasks:
                t.cancel()
            raise SystemExit(f"lopsided connection split {split} (want {want} each): round refused")
        box.stop = time.monotonic() + seconds
        connected.set()
        await asyncio.gather(*tasks)

    asyncio.run(main())
    return len(latencies), latencies, errors


def start_server(url: str, data_dir: str, port: int, fast: bool = True) -> subprocess.Popen[bytes]:
    """One `loyalwallet serve` process (one worker) on its own port."""
    env = {
        **os.environ,
        "LOYALWALLET_DATABASE_URL": url,
        "LOYALWALLET_DATA_DIR": data_dir,
        # The bench measures the request path; the outbox is drained by a separate worker
        # in production, and its rows are still written in every purchase transaction.
        "LOYALWALLET_RUN_WORKER": "0",
        # 0: every purchase through the general path (checkout.service), for comparison.
        "LOYALWALLET_FAST_CHECKOUT": "1" if fast else "0",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "loyalwallet.cli", "serve", "--port", str(port), "--workers", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        # LWBENCH_SERVER_LOG=file: the servers' log there (a fast path that fails says so);
        # the file stays open for the child, as long as the bench runs.
        stderr=open(log, "ab") if (log := os.environ.get("LWBENCH_SERVER_LOG")) else subprocess.DEVNULL,  # noqa: SIM115
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start")


# --- CPU and connection accounting from /proc ---------------------------------------------

TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) of a live process; 0 if it is gone or
    not readable."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def machine_busy() -> tuple[float, float]:
    """(busy CPU seconds of the whole machine, elapsed CPU seconds of all cores)."""
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + parts[4]  # idle + iowait
    return (sum(parts) - idle) / TICK, sum(parts) / TICK


def self_cpu() -> float:
    t = os.times()
    return t.user + t.system


def backend_pids(url: str) -> list[int]:
    """The PostgreSQL backends connected to the bench database (not this query's own)."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return [r[0] for r in rows]


def _socket_inodes(pid: int) -> set[str]:
    out = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                out.add(target[8:-1])
    except OSError:
        pass
    return out


def connection_split(servers: dict[int, int]) -> dict[int, int]:
    """How many established client connections each server process holds
    ({pid: count}), read from /proc/net/tcp and the processes' descriptors."""
    ports = {f"{port:04X}" for port in servers.values()}
    established: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if cols[1].rsplit(":", 1)[1] in ports and cols[3] == "01":
                        established.add(cols[9])
        except OSError:
            continue
    return {pid: len(_socket_inodes(pid) & established) for pid in servers}


class Meter:
    """CPU used by the given processes, this process and the whole machine between
    start() and stop()."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.cpu0 = {pid: proc_cpu(pid) for pid in self.pids}
        self.self0 = self_cpu()
        self.busy0, self.total0 = machine_busy()

    def stop(self) -> dict[str, float]:
        cpu = sum(proc_cpu(pid) - self.cpu0[pid] for pid in self.pids)
        busy, total = machine_busy()
        mine = self_cpu() - self.self0
        return {
            "seconds": time.monotonic() - self.t0,
            "procs": cpu,
            "self": mine,
            "machine_busy": busy - self.busy0,
            "machine_total": total - self.total0,
        }


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: list[float], fmt: str = "{:.2f}") -> str:
    return " / ".join(fmt.format(v) for v in (min(values), median(values), max(values)))


def check_ledger(url: str, data_dir: str) -> tuple[int, str]:
    env = {**os.environ, "LOYALWALLET_DATABASE_URL": url, "LOYALWALLET_DATA_DIR": data_dir}
    out = subprocess.run(
        [sys.executable, "-m", "loyalwallet.cli", "check-ledger"], env=env, capture_output=True, text=True
    )
    return out.returncode, (out.stdout + out.stderr).strip()[-500:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10, help="length of each side of a round")
    ap.add_argument("--rounds", type=int, default=5, help="rounds (raw and HTTP each, alternating)")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument(
        "--cards",
        type=int,
        default=20000,
        help="cards to spread purchases over (few repeat visits, as in a real café)",
    )
    ap.add_argument("--workers", type=int, default=2, help="server processes")
    ap.add_argument(
        "--no-vacuum",
        action="store_true",
        help="do not VACUUM (ANALYZE) the written tables before each side of a round (PostgreSQL "
        "here runs with autovacuum off: dead card versions pile up round after round)",
    )
    ap.add_argument(
        "--general",
        action="store_true",
        help="also measure the general path (servers with LOYALWALLET_FAST_CHECKOUT=0) in each round",
    )
    args = ap.parse_args()
    if args.clients % args.workers:
        sys.exit("--clients must be a multiple of --workers (an even split)")

    url, name = create_database("lwbench_i14_purchase")
    data_dir = tempfile.mkdtemp(prefix="lwbench-")
    servers: dict[int, int] = {}  # pid -> port
    procs: list[subprocess.Popen[bytes]] = []
    try:
        key, codes, ids = seed(url, data_dir, args.cards)
        with psycopg.connect(url) as conn:
            merchant_id = conn.execute("SELECT merchant_id FROM cards LIMIT 1").fetchone()[0]  # type: ignore[index]
        # One process per port and the clients dealt round-robin over the ports: the split
        # is exactly even (uvicorn's --workers shares one socket, and a keep-alive
        # connection stays with whichever process accepted it: 16/0 splits happen).
        for _ in range(args.workers):
            port = free_port()
            proc = start_server(url, data_dir, port)
            procs.append(proc)
            servers[proc.pid] = port
        ports = list(servers.values())
        gservers: dict[int, int] = {}
        if args.general:
            for _ in range(args.workers):
                port = free_port()
                proc = start_server(url, data_dir, port, fast=False)
                procs.append(proc)
                gservers[proc.pid] = port
            run_http(list(gservers.values()), key, codes, args.clients, 2, gservers, [])
        with open("/proc/loadavg") as f:
            load_before = f.read().split()[:3]
        print(
            f"checkout bench: {args.clients} clients, {args.rounds} rounds of {args.seconds:.0f} s per side, "
            f"{args.cards} cards, {args.workers} server process(es); load average before: {' '.join(load_before)}"
        )
        run_http(ports, key, codes, args.clients, 2, servers, [])  # warm-up: imports, prepared statements
        run_raw(url, ids, merchant_id, args.clients, 1)  # warm-up

        rows: list[dict[str, float]] = []
        fell = fallbacks(ports)
        for r in range(args.rounds):
            row: dict[str, float] = {}
            sides = ["raw", "http"] + (["general"] if args.general else [])
            for side in sides[r % len(sides) :] + sides[: r % len(sides)]:
                dead = dead_tuples(url)
                row.update({f"dead_{side}_{t}": n for t, n in dead.items()})
                if not args.no_vacuum:
                    vacuum(url)  # the same for every side: each starts from the same tidy tables
                if side == "raw":
                    row.update(measure_raw(url, ids, merchant_id, args))
                elif side == "http":
                    seq0 = seq_reads(url)
                    row.update(measure_http(url, ports, key, codes, args, servers))
                    time.sleep(1.1)  # the servers' backends flush their table counts within 1 s
                    seq1 = seq_reads(url)
                    row["seq_read"] = sum(seq1.values()) - sum(seq0.values())
                    row["seq_detail"] = " ".join(  # type: ignore[assignment]
                        f"{t} {seq1[t] - seq0.get(t, 0):.0f}"
                        for t in sorted(seq1)
                        if seq1[t] > seq0.get(t, 0)
                    )
                else:
                    got = measure_http(url, list(gservers.values()), key, codes, args, gservers)
                    row.update({"gen_" + k.removeprefix("http_"): v for k, v in got.items()})
            row["ratio"] = row["http_rate"] / row["raw_rate"]
            if args.general:
                row["gen_ratio"] = row["gen_rate"] / row["raw_rate"]
            rows.append(row)
            print(
                f"round {r + 1}: raw {row['raw_rate']:6.0f}/s p99 {row['raw_p99']:5.1f} ms | "
                f"http {row['http_rate']:5.0f}/s p50 {row['http_p50']:5.1f} p99 {row['http_p99']:6.1f} ms | "
                f"ratio {row['ratio']:.2f} | per purchase: server {row['server_ms']:.2f} ms, "
                f"PostgreSQL {row['pg_ms']:.2f} ms, client {row['client_ms']:.2f} ms CPU | "
                f"raw tx: PostgreSQL {row['raw_pg_ms']:.2f} ms, client {row['raw_client_ms']:.2f} ms CPU | "
                f"others' CPU {row['others']:.0%} / {row['others_raw']:.0%} of the machine (http / raw)",
                flush=True,
            )
            if args.general:
                print(
                    f"         general path: http {row['gen_rate']:5.0f}/s p99 {row['gen_p99']:6.1f} ms | "
                    f"ratio {row['gen_ratio']:.2f} | server {row['gen_server_ms']:.2f} ms, "
                    f"PostgreSQL {row['gen_pg_ms']:.2f} ms CPU per purchase",
                    flush=True,
                )
            print(
                "         dead tuples before each side (cards / idempotency_records / outbox; "
                + ("vacuumed then" if not args.no_vacuum else "not vacuumed")
                + "): "
                + ", ".join(
                    f"{side} {row[f'dead_{side}_cards']:.0f}/{row[f'dead_{side}_idempotency_records']:.0f}"
                    f"/{row[f'dead_{side}_outbox']:.0f}"
                    for side in sides
                ),
                flush=True,
            )
            print(
                f"         rows read by sequential scans during the fast side: {row['seq_read']:.0f}"
                f" ({row['seq_detail'] or 'none'})",
                flush=True,
            )
            fell, before = fallbacks(ports), fell
            print(f"         fast path fell back: {show_fallbacks(fell, before)}", flush=True)
        print()
        print(f"over {len(rows)} rounds (min / median / max):")
        col = {k: [row[k] for row in rows] for k in rows[0]}
        print(f"  ratio http/raw          {spread(col['ratio'])}   (goal: median >= 0.45)")
        print(f"  http p99, ms            {spread(col['http_p99'], '{:.1f}')}   (goal <= 30)")
        print(f"  http tx/s               {spread(col['http_rate'], '{:.0f}')}")
        print(f"  raw tx/s                {spread(col['raw_rate'], '{:.0f}')}")
        print(f"  server CPU ms/purchase  {spread(col['server_ms'])}")
        print(f"  PostgreSQL CPU ms/purch {spread(col['pg_ms'])}   (raw tx: {spread(col['raw_pg_ms'])})")
        print(
            f"  others' CPU share       {spread(col['others'], '{:.0%}')}  (machine busy outside the bench)"
        )
        with open("/proc/loadavg") as f:
            print(f"  load average after      {' '.join(f.read().split()[:3])}")
        print(f"  fast path fallbacks     {show_fallbacks(fallbacks(ports), {})} (warm-up included)")
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    try:
        rc, out = check_ledger(url, data_dir)
        print(f"check-ledger: {'clean' if rc == 0 else 'PROBLEMS'}" + ("" if rc == 0 else f"\n{out}"))
    finally:
        drop_database(name)
    if rc != 0:
        sys.exit(1)


# The tables a purchase or the raw transaction writes (and the card reads go through).
WRITTEN = ("cards", "ledger_entries", "purchases", "outbox", "idempotency_records", "coupons")


def dead_tuples(url: str) -> dict[str, float]:
    """Dead row versions per written table (pg_stat_user_tables: approximate, and what
    VACUUM would reclaim)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_force_next_flush()")
        rows = conn.execute(
            "SELECT relname, n_dead_tup FROM pg_stat_user_tables WHERE relname = ANY(%s)", (list(WRITTEN),)
        ).fetchall()
    return {name: float(n) for name, n in rows}


def seq_reads(url: str) -> dict[str, float]:
    """Rows read by sequential scans so far, per written table (a plan made while a table
    was empty, kept by a connection's prepared statement, scans it whole every time)."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT relname, seq_tup_read FROM pg_stat_user_tables WHERE relname = ANY(%s)", (list(WRITTEN),)
        ).fetchall()
    return {name: float(n) for name, n in rows}


def vacuum(url: str) -> None:
    """VACUUM (ANALYZE) the written tables, so no side pays for the dead versions the
    sides before it left (this machine's PostgreSQL runs with autovacuum off)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"VACUUM (ANALYZE) {', '.join(WRITTEN)}")


def fallbacks(ports: list[int]) -> dict[str, float]:
    """The fast path's fallbacks so far by place (loyalwallet_fast_path_fallbacks_total on
    each fast server's /metrics): what sent purchases to the general path."""
    import urllib.request

    total: dict[str, float] = {}
    for port in ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            text = r.read().decode()
        for line in text.splitlines():
            if line.startswith("loyalwallet_fast_path_fallbacks_total{"):
                labels, _, value = line.rpartition(" ")
                place = labels.split('place="', 1)[1].split('"', 1)[0]
                total[place] = total.get(place, 0) + float(value)
    return total


def show_fallbacks(now: dict[str, float], before: dict[str, float]) -> str:
    delta = {k: v - before.get(k, 0) for k, v in now.items() if v - before.get(k, 0)}
    return ", ".join(f"{place} {n:.0f}" for place, n in sorted(delta.items(), key=lambda x: -x[1])) or "none"


def _others(m: dict[str, float], ours: float) -> float:
    """The share of the machine's CPU used by processes outside the bench."""
    return max(0.0, (m["machine_busy"] - ours) / m["machine_total"]) if m["machine_total"] else 0.0


def measure_raw(url: str, ids: list[int], merchant_id: int, args: argparse.Namespace) -> dict[str, float]:
    n, lat, got = run_raw(
        url, ids, merchant_id, args.clients, args.seconds, meter=lambda: Meter(backend_pids(url))
    )
    assert got is not None
    return {
        "raw_rate": n / args.seconds,
        "raw_p99": pct(lat, 0.99) * 1000,
        "raw_pg_ms": got["procs"] / max(n, 1) * 1000,
        "raw_client_ms": got["self"] / max(n, 1) * 1000,
        "others_raw": _others(got, got["procs"] + got["self"]),
    }


def measure_http(
    url: str,
    ports: list[int],
    key: str,
    codes: list[str],
    args: argparse.Namespace,
    servers: dict[int, int],
) -> dict[str, float]:
    backends = backend_pids(url)  # the servers' pooled connections, open since warm-up
    server_meter, pg_meter = Meter(list(servers)), Meter(backends)
    server_meter.start()
    pg_meter.start()
    n, lat, errors = run_http(ports, key, codes, args.clients, args.seconds, servers, [])
    srv, pg = server_meter.stop(), pg_meter.stop()
    if errors:
        sys.exit(f"{len(errors)} failed requests, first: {errors[0]}")
    return {
        "http_rate": n / args.seconds,
        "http_p50": pct(lat, 0.5) * 1000,
        "http_p99": pct(lat, 0.99) * 1000,
        "server_ms": srv["procs"] / max(n, 1) * 1000,
        "pg_ms": pg["procs"] / max(n, 1) * 1000,
        "client_ms": srv["self"] / max(n, 1) * 1000,
        "others": _others(srv, srv["procs"] + pg["procs"] + srv["self"]),
    }


if __name__ == "__main__":
    main()
