"""A soak of one installation with many merchants: steady traffic for minutes, retention on.

    .venv/bin/python bench/soak.py                      # 100 merchants, 50 requests/s, 10 minutes
    .venv/bin/python bench/soak.py --minutes 3 --rate 20

In a fresh PostgreSQL database (127.0.0.1:5432): `--merchants` merchants built as
bench/tenants.py builds them (20 guests each), a cashier and a manager key each; then a
`loyalwallet serve` process (no embedded worker) and a `loyalwallet worker` process, as
deployed. Retention is short so it runs during the soak: delivered outbox rows kept
`--retention-seconds`, Idempotency-Key answers the same, the idempotency expiry every
minute (LOYALWALLET_PERIODIC_SECONDS_IDEMPOTENCY_EXPIRY).

Traffic at `--rate` requests/s spread over the merchants: purchases (40%), quotes (20%),
card lookups (20%), replays of a purchase with its Idempotency-Key (10%), refunds of an
earlier purchase (10%), and a wallet campaign to all of one merchant's guests every
`--campaign-seconds`. Every 10 s: the server's and the worker's RSS, the database's
connections, the outbox's lag (oldest due pending row, interactive lane and all) and the
sizes of the outbox and idempotency tables. At the end: server errors (5xx), latency
p50/p99 per kind, the samples at the start, after the first retention and at the end,
and `loyalwallet check-ledger`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import queue
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit import create_database, drop_database, free_port

ROOT = Path(__file__).resolve().parents[1]


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] if values else float("nan")


def seed(url: str, data_dir: Path, merchants: int, cards: int) -> list[dict[str, Any]]:
    """The merchants (tenants.build), a cashier and a manager key each; returns per
    merchant its keys and card codes."""
    from sqlalchemy import select

    import tenants
    from loyalwallet import db, wiring
    from loyalwallet.cards.models import Card
    from loyalwallet.config import Settings, configure, load_settings
    from loyalwallet.merchants.models import Merchant
    from loyalwallet.merchants.service import create_api_key
    from loyalwallet.migrations import migrate

    s = configure(load_settings(data_dir, url))
    s = configure(Settings(**{**s.__dict__, "run_worker": False}))
    migrate(s.database_url)
    db.init_engine(s)
    wiring.install()
    took = tenants.build(merchants, cards)
    tenants.catch_up()
    out = []
    with db.transaction() as session:
        for m in session.scalars(select(Merchant).order_by(Merchant.id)):
            _, cashier = create_api_key(session, m.id, "soak", "cashier")
            _, manager = create_api_key(session, m.id, "soak-manager", "manager")
            codes = list(session.scalars(select(Card.code).where(Card.merchant_id == m.id)))
            out.append({"id": m.id, "cashier": cashier, "manager": manager, "codes": codes})
    db.get_engine().dispose()
    print(f"{merchants} merchants, {cards} guests each, built in {took:.0f} s", flush=True)
    return out


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def sample(conn: psycopg.Connection[Any], db_name: str, server: int, worker: int) -> dict[str, float]:
    row = conn.execute(
        """SELECT
             (SELECT count(*) FROM pg_stat_activity WHERE datname = %s),
             (SELECT extract(epoch FROM now() - min(next_attempt_at)) FROM outbox
               WHERE status = 'pending' AND next_attempt_at <= now() AND priority = 0),
             (SELECT extract(epoch FROM now() - min(next_attempt_at)) FROM outbox
               WHERE status = 'pending' AND next_attempt_at <= now()),
             (SELECT count(*) FROM outbox),
             (SELECT count(*) FROM outbox WHERE status = 'done'),
             pg_total_relation_size('outbox'),
             (SELECT count(*) FROM idempotency_records),
             pg_total_relation_size('idempotency_records')""",
        (db_name,),
    ).fetchone()
    assert row is not None
    return {
        "server_rss": rss_mib(server),
        "worker_rss": rss_mib(worker),
        "connections": float(row[0]),
        # next_attempt_at is written by Python in UTC without the time zone's lag; a row
        # due in the future shows as negative: 0.
        "lag_interactive": max(0.0, float(row[1] or 0)),
        "lag_all": max(0.0, float(row[2] or 0)),
        "outbox_rows": float(row[3]),
        "outbox_done": float(row[4]),
        "outbox_mb": row[5] / 2**20,
        "idem_rows": float(row[6]),
        "idem_mb": row[7] / 2**20,
    }


# Tables whose on-disk size the soak prints at the start and the end: the ones retention
# bounds (outbox, idempotency_records) and the others that grow with traffic, for scale.
TABLES = [
    "outbox",
    "idempotency_records",
    "message_deliveries",
    "card_sends",
    "google_message_sends",
    "apple_push_pending",
    "campaign_recipients",
    "audit_log",
    "purchases",
    "purchase_lines",
    "ledger_entries",
    "refunds",
    "rate_hits",
    "web_sessions",
    "worker_heartbeats",
    "periodic_runs",
]


def table_sizes(conn: psycopg.Connection[Any]) -> dict[str, tuple[int, int, int, str]]:
    """Per table: (pg_total_relation_size bytes, live rows, dead rows, last (auto)vacuum)."""
    out: dict[str, tuple[int, int, int, str]] = {}
    for table in TABLES:
        found = conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()
        if found is None or found[0] is None:
            continue
        row = conn.execute(
            f"""SELECT pg_total_relation_size(c.oid), (SELECT count(*) FROM "{table}"),
                       coalesce(s.n_dead_tup, 0),
                       coalesce(to_char(greatest(s.last_vacuum, s.last_autovacuum), 'HH24:MI:SS'), '-')
                FROM pg_class c LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
                WHERE c.oid = to_regclass(%s)""",
            (table,),
        ).fetchone()
        assert row is not None
        out[table] = (int(row[0]), int(row[1]), int(row[2]), str(row[3]))
    return out


def print_table_sizes(
    before: dict[str, tuple[int, int, int, str]], after: dict[str, tuple[int, int, int, str]]
) -> None:
    print(
        "| table | size before MB | size after MB | rows before | rows after | dead rows after | last vacuum (UTC) |"
    )
    print("|---|---|---|---|---|---|---|")
    for table in TABLES:
        if table not in after:
            continue
        b = before.get(table, (0, 0, 0, "-"))
        a = after[table]
        print(
            f"| {table} | {b[0] / 2**20:.2f} | {a[0] / 2**20:.2f} | {b[1]:,} | {a[1]:,} | {a[2]:,} | {a[3]} |"
        )


class Load:
    """Requests at a fixed rate from a pool of client threads."""

    def __init__(self, base: str, shops: list[dict[str, Any]], rate: float, campaign_seconds: float) -> None:
        self.base, self.shops, self.rate = base, shops, rate
        self.campaign_seconds = campaign_seconds
        self.tasks: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue(maxsize=1000)
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = {}
        self.status: dict[str, dict[int, int]] = {}
        self.errors: list[str] = []
        self.purchases: list[tuple[dict[str, Any], str, dict[str, Any], int]] = []  # shop, key, body, id
        self.late = 0  # requests the clients could not start on time

    def _record(self, kind: str, seconds: float, status: int, text: str) -> None:
        with self.lock:
            self.latency.setdefault(kind, []).append(seconds)
            counts = self.status.setdefault(kind, {})
            counts[status] = counts.get(status, 0) + 1
            if status >= 500 and len(self.errors) < 20:
                self.errors.append(f"{kind} {status}: {text[:300]}")

    def _one(self, client: httpx.Client, kind: str, shop: dict[str, Any]) -> None:
        auth = {"Authorization": f"Bearer {shop['cashier']}"}
        code = random.choice(shop["codes"])
        if kind == "purchase":
            key, body = uuid.uuid4().hex, {"card": code, "amount": random.randint(100, 5000) * 100}
            r = self._send(client, kind, "POST", "/api/v1/purchases", auth, body, key)
            if r is not None and r.status_code == 201:
                with self.lock:
                    self.purchases.append((shop, key, body, r.json()["id"]))
                    del self.purchases[:-2000]
        elif kind == "quote":
            body = {"card": code, "amount": random.randint(100, 5000) * 100}
            self._send(client, kind, "POST", "/api/v1/purchases/quote", auth, body)
        elif kind == "lookup":
            self._send(client, kind, "GET", f"/api/v1/cards/{code}", auth)
        elif kind in ("replay", "refund"):
            with self.lock:
                if not self.purchases:
                    return
                if kind == "replay":
                    shop, key, body, _ = random.choice(self.purchases)
                else:
                    shop, key, body, pid = self.purchases.pop(random.randrange(len(self.purchases)))
            auth = {"Authorization": f"Bearer {shop['cashier']}"}
            if kind == "replay":
                self._send(client, kind, "POST", "/api/v1/purchases", auth, body, key)
            else:
                self._send(
                    client, kind, "POST", f"/api/v1/purchases/{pid}/refunds", auth, {}, uuid.uuid4().hex
                )
        elif kind == "campaign":
            auth = {"Authorization": f"Bearer {shop['manager']}"}
            body = {
                "name": f"Soak {time.time():.0f}",
                "header": "News",
                "body": "A new menu",
                "send_now": True,
            }
            self._send(client, kind, "POST", "/api/v1/campaigns", auth, body)

    def _send(
        self,
        client: httpx.Client,
        kind: str,
        method: str,
        path: str,
        headers: dict[str, str],
        body: dict[str, Any] | None = None,
        key: str | None = None,
    ) -> httpx.Response | None:
        if key:
            headers = {**headers, "Idempotency-Key": key}
        t0 = time.perf_counter()
        try:
            r = client.request(method, self.base + path, headers=headers, json=body)
        except httpx.HTTPError as exc:
            self._record(kind, time.perf_counter() - t0, 599, repr(exc))
            return None
        self._record(kind, time.perf_counter() - t0, r.status_code, r.text)
        return r

    def _client(self) -> None:
        with httpx.Client(timeout=30) as client:
            while True:
                task = self.tasks.get()
                if task is None:
                    return
                kind, shop = task
                try:
                    self._one(client, kind, shop)
                except Exception as exc:  # the bench's own bug: counted, not hidden
                    self._record(kind, 0.0, 598, repr(exc))

    def run(self, seconds: float, clients: int = 16) -> None:
        threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]
        for t in threads:
            t.start()
        kinds = ["purchase"] * 4 + ["quote"] * 2 + ["lookup"] * 2 + ["replay", "refund"]
        started = time.monotonic()
        next_campaign = started + 5
        for n in itertools.count():
            at = started + n / self.rate
            now = time.monotonic()
            if at - started >= seconds:
                break
            if at > now:
                time.sleep(at - now)
            if time.monotonic() >= next_campaign:
                self.tasks.put(("campaign", random.choice(self.shops)))
                next_campaign += self.campaign_seconds
            try:
                self.tasks.put_nowait((random.choice(kinds), random.choice(self.shops)))
            except queue.Full:
                self.late += 1
        for _ in threads:
            self.tasks.put(None)
        for t in threads:
            t.join()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--merchants", type=int, default=100)
    parser.add_argument("--cards", type=int, default=20)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--retention-seconds", type=float, default=120.0)
    parser.add_argument("--campaign-seconds", type=float, default=120.0)
    parser.add_argument(
        "--retention-interval",
        type=float,
        default=60.0,
        help="seconds between runs of the outbox retention and of the idempotency expiry",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the database and its data directory at the end (printed)"
    )
    args = parser.parse_args()

    url, name = create_database("lwsoak")
    data_dir = Path(tempfile.mkdtemp(prefix="lwsoak-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        shops = seed(url, data_dir, args.merchants, args.cards)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALWALLET_")}
        env.update(
            PYTHONPATH=str(ROOT / "src"),
            LOYALWALLET_DATABASE_URL=url,
            LOYALWALLET_DATA_DIR=str(data_dir),
            LOYALWALLET_BASE_URL=f"http://127.0.0.1:{port}",
            LOYALWALLET_RUN_WORKER="0",
            LOYALWALLET_DB_PROCESSES="2",
            LOYALWALLET_OUTBOX_RETENTION_DAYS=str(args.retention_seconds / 86400),
            LOYALWALLET_IDEMPOTENCY_TTL_HOURS=str(args.retention_seconds / 3600),
            LOYALWALLET_PERIODIC_SECONDS_IDEMPOTENCY_EXPIRY=str(args.retention_interval),
            LOYALWALLET_PERIODIC_SECONDS_OUTBOX_RETENTION=str(args.retention_interval),
        )
        print(
            f"retention: delivered outbox rows and Idempotency-Key answers kept {args.retention_seconds:.0f} s, "
            f"purged every {args.retention_interval:.0f} s",
            flush=True,
        )
        with psycopg.connect(url, autocommit=True) as conn:
            sizes_before = table_sizes(conn)
        log = (data_dir / "serve.log").open("wb")
        server = subprocess.Popen(
            [sys.executable, "-m", "loyalwallet.cli", "serve", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        worker = subprocess.Popen(
            [sys.executable, "-m", "loyalwallet.cli", "worker"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        procs += [server, worker]
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 300  # a loaded machine starts the server slowly
        last = "no answer"
        while True:
            try:
                r = httpx.get(base + "/readyz", timeout=5)
                if r.status_code == 200:
                    break
                last = f"{r.status_code} {r.text[:300]}"
            except httpx.HTTPError as exc:
                last = repr(exc)
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"/readyz: {last}\n" + (data_dir / "serve.log").read_text()[-3000:])
            time.sleep(0.3)

        samples: list[tuple[float, dict[str, float]]] = []
        stop = threading.Event()
        started = time.monotonic()

        def sampler() -> None:
            with psycopg.connect(url, autocommit=True) as conn:
                while True:
                    samples.append((time.monotonic() - started, sample(conn, name, server.pid, worker.pid)))
                    s = samples[-1][1]
                    print(
                        f"  t={samples[-1][0]:4.0f}s rss {s['server_rss']:.0f}/{s['worker_rss']:.0f} MiB, "
                        f"{s['connections']:.0f} conns, lag {s['lag_interactive']:.2f}/{s['lag_all']:.2f} s, "
                        f"outbox {s['outbox_rows']:.0f} rows {s['outbox_mb']:.1f} MB, "
                        f"idempotency {s['idem_rows']:.0f} rows {s['idem_mb']:.1f} MB",
                        flush=True,
                    )
                    if stop.wait(10):
                        return

        sampling = threading.Thread(target=sampler, daemon=True)
        sampling.start()
        load = Load(base, shops, args.rate, args.campaign_seconds)
        load.run(args.minutes * 60)
        elapsed = time.monotonic() - started
        stop.set()
        sampling.join()
        time.sleep(5)
        with psycopg.connect(url, autocommit=True) as conn:
            samples.append((time.monotonic() - started, sample(conn, name, server.pid, worker.pid)))
            sizes_after = table_sizes(conn)
        check = subprocess.run(
            [sys.executable, "-m", "loyalwallet.cli", "check-ledger"], env=env, capture_output=True, text=True
        )
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        if args.keep:
            print(f"kept: database {name}, data directory {data_dir}")
        else:
            drop_database(name)

    total = sum(len(v) for v in load.latency.values())
    server_errors = sum(n for counts in load.status.values() for code, n in counts.items() if code >= 500)
    print()
    print(
        f"{total} requests in {elapsed:.0f} s ({total / elapsed:.1f}/s; {load.late} not sent: clients busy), "
        f"server errors (5xx or no answer): {server_errors}"
    )
    for e in load.errors:
        print("   ", e)
    print("| kind | requests | statuses | p50 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|---|")
    everything: list[float] = []
    for kind, values in sorted(load.latency.items()):
        everything += values
        statuses = ", ".join(f"{c}: {n}" for c, n in sorted(load.status[kind].items()))
        print(
            f"| {kind} | {len(values)} | {statuses} | {pct(values, 0.5) * 1000:.0f} | "
            f"{pct(values, 0.99) * 1000:.0f} | {max(values) * 1000:.0f} |"
        )
    print(
        f"| all | {len(everything)} | | {pct(everything, 0.5) * 1000:.0f} | "
        f"{pct(everything, 0.99) * 1000:.0f} | {max(everything) * 1000:.0f} |"
    )
    print()
    print(
        "On-disk sizes (pg_total_relation_size: table, indexes, TOAST) at the start of the load and at the end:"
    )
    print_table_sizes(sizes_before, sizes_after)
    first_purge = args.retention_seconds + args.retention_interval  # the first rows are gone by then
    keys = ["server_rss", "worker_rss", "connections", "outbox_rows", "outbox_mb", "idem_rows", "idem_mb"]
    picks = {
        "start": samples[0],
        "after the first retention": next((s for s in samples if s[0] >= first_purge), samples[-1]),
        "end": samples[-1],
    }
    print()
    print("| sample | t s | " + " | ".join(keys) + " |")
    print("|---|---|" + "---|" * len(keys))
    for label, (t, s) in picks.items():
        print(f"| {label} | {t:.0f} | " + " | ".join(f"{s[k]:.1f}" for k in keys) + " |")
    late = [s for t, s in samples if t >= first_purge]
    for k in keys:
        if late:
            values = [s[k] for s in late]
            print(f"  {k} after the first retention: min {min(values):.1f}, max {max(values):.1f}")
    lag_i = [s["lag_interactive"] for _, s in samples]
    lag_a = [s["lag_all"] for _, s in samples]
    print(
        f"outbox lag s (min/median/max): interactive {min(lag_i):.2f} / {statistics.median(lag_i):.2f} / "
        f"{max(lag_i):.2f}; all lanes {min(lag_a):.2f} / {statistics.median(lag_a):.2f} / {max(lag_a):.2f}"
    )
    print(
        f"check-ledger: exit {check.returncode} {check.stdout.strip()[-300:]} {check.stderr.strip()[-300:]}"
    )
    print(json.dumps({"samples": samples[-1][1]}))


if __name__ == "__main__":
    main()
