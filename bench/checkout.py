"""Checkout throughput: POST /api/v1/purchases over HTTP vs the raw SQL accrual transaction.

Both sides run in the same process run, on the same PostgreSQL, with the same number of
concurrent clients, so the ratio is meaningful on a noisy machine:

- raw:  BEGIN; SELECT ... FROM cards WHERE id = $1 FOR UPDATE; UPDATE cards SET balance ...;
        INSERT INTO ledger_entries ...; COMMIT   (psycopg, one connection per client)
- http: `loyalwallet serve` in a subprocess; each client sends purchases with a fresh
        Idempotency-Key over a keep-alive HTTP/1.1 connection.

Usage:  .venv/bin/python bench/checkout.py [--seconds 10] [--clients 16] [--cards 2000] [--workers 2]
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
    url: str, card_ids: list[int], merchant_id: int, clients: int, seconds: float
) -> tuple[int, list[float]]:
    stop = time.monotonic() + seconds
    latencies: list[float] = []
    lock = threading.Lock()

    def client(i: int) -> None:
        mine: list[float] = []
        with psycopg.connect(url, prepare_threshold=1) as conn:
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

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(latencies), latencies


# --- HTTP path ----------------------------------------------------------------------------


async def http_client(
    port: int,
    key: str,
    codes: list[str],
    start: int,
    step: int,
    stop: float,
    out: list[float],
    errors: list[str],
) -> None:
    """A minimal keep-alive HTTP/1.1 client: cheap enough not to steal the server's CPU."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
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
    port: int, key: str, codes: list[str], clients: int, seconds: float
) -> tuple[int, list[float], list[str]]:
    latencies: list[float] = []
    errors: list[str] = []

    async def main() -> None:
        stop = time.monotonic() + seconds
        await asyncio.gather(
            *(http_client(port, key, codes, i, clients, stop, latencies, errors) for i in range(clients))
        )

    asyncio.run(main())
    return len(latencies), latencies, errors


def start_server(url: str, data_dir: str, port: int, workers: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "LOYALWALLET_DATABASE_URL": url,
        "LOYALWALLET_DATA_DIR": data_dir,
        # The bench measures the request path; the outbox is drained by a separate worker
        # in production, and its rows are still written in every purchase transaction.
        "LOYALWALLET_RUN_WORKER": "0",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "loyalwallet.cli", "serve", "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
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


def report(name: str, n: int, seconds: float, latencies: list[float]) -> float:
    rate = n / seconds
    print(
        f"{name:<6} {rate:8.0f} tx/s   p50 {pct(latencies, 0.5) * 1000:6.2f} ms   p99 {pct(latencies, 0.99) * 1000:6.2f} ms   (n={n})"
    )
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument(
        "--cards",
        type=int,
        default=20000,
        help="cards to spread purchases over (few repeat visits, as in a real café)",
    )
    ap.add_argument("--workers", type=int, default=2, help="server processes")
    args = ap.parse_args()

    url, name = create_database("lwbench")
    data_dir = tempfile.mkdtemp(prefix="lwbench-")
    try:
        key, codes, ids = seed(url, data_dir, args.cards)
        with psycopg.connect(url) as conn:
            merchant_id = conn.execute("SELECT merchant_id FROM cards LIMIT 1").fetchone()[0]  # type: ignore[index]
        port = free_port()
        server = start_server(url, data_dir, port, args.workers)
        try:
            run_http(port, key, codes, args.clients, 2)  # warm-up: imports, prepared statements
            n_http, lat_http, errors = run_http(port, key, codes, args.clients, args.seconds)
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=30)
        run_raw(url, ids, merchant_id, args.clients, 1)  # warm-up
        n_raw, lat_raw = run_raw(url, ids, merchant_id, args.clients, args.seconds)

        print(
            f"checkout bench: {args.clients} concurrent clients, {args.seconds:.0f} s each, {args.cards} cards, {args.workers} server process(es)"
        )
        raw = report("raw", n_raw, args.seconds, lat_raw)
        http = report("http", n_http, args.seconds, lat_http)
        print(
            f"ratio  http/raw = {http / raw:.2f}   (goal >= 0.35)   http p99 {pct(lat_http, 0.99) * 1000:.1f} ms (goal <= 30 ms)"
        )
        if errors:
            print(f"{len(errors)} failed requests, first: {errors[0]}")
            sys.exit(1)
        print(
            f"median latency ratio http/raw = {statistics.median(lat_http) / statistics.median(lat_raw):.1f}x"
        )
    finally:
        drop_database(name)


if __name__ == "__main__":
    main()
