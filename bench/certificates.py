"""Gift-certificate spend throughput: POST /api/v1/certificates/{code}/redemptions over
HTTP vs the same raw SQL transaction, in one run, on the same PostgreSQL, with the same
number of concurrent clients. Rounds alternate the two sides, so a noisy machine moves
both; the ratio is printed per round, then min / median / max.

- raw:  BEGIN; SELECT balance FROM gift_certificates WHERE id = $1 FOR UPDATE;
        UPDATE gift_certificates SET balance = balance - 100, updated_at = now() ...;
        INSERT INTO certificate_entries ...; COMMIT   (psycopg, one connection per client)
- http: `loyalwallet serve` in a subprocess; each client spends 1.00 from a certificate
        with a fresh Idempotency-Key over a keep-alive HTTP/1.1 connection (the service
        also checks the expiry, writes the idempotency record and the certificate.spent
        outbox row, and answers with the certificate). On PostgreSQL the spend is served by
        its fast path (certificates/fast.py); --general adds a third side per round: the
        same spends on servers with the general path (LOYALWALLET_FAST_CERTIFICATES=0).

Per round: both rates, p50/p99, and CPU per spend read from /proc (bench/checkout.py's
Meter): the server processes and their PostgreSQL backends for HTTP, the backends for
the raw transaction. CPU per spend is robust to the load of the machine; rates are not.
check-ledger runs at the end.

Usage:  .venv/bin/python bench/certificates.py [--seconds 5] [--rounds 3] [--clients 16]
        [--certificates 2000] [--workers 2] [--general]
Needs PostgreSQL at 127.0.0.1:5432 (trust auth); creates and drops its own database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import psycopg

from benchkit import create_database, drop_database, free_port
from checkout import Meter, backend_pids, check_ledger, pct, spread, start_server

SPEND = 100


def seed(url: str, data_dir: str, n: int) -> tuple[str, list[str], list[int], int]:
    """A merchant, a cashier key, n certificates with room for every spend of the run."""
    env = {**os.environ, "LOYALWALLET_DATABASE_URL": url, "LOYALWALLET_DATA_DIR": data_dir}
    script = f"""
import json
from loyalwallet import db, wiring
from loyalwallet.config import configure, load_settings
from loyalwallet.migrations import migrate
from loyalwallet.merchants.actors import system
from loyalwallet.merchants.service import create_merchant, create_api_key
from loyalwallet.certificates.schemas import CertificateIn
from loyalwallet.certificates.service import sell
s = configure(load_settings())
migrate(s.database_url)
db.init_engine(s)
wiring.install()
with db.transaction() as session:
    m = create_merchant(session, "Bench café")
    _, key = create_api_key(session, m.id, "bench", "cashier")
    certs = [sell(session, system(m.id), CertificateIn(amount=10**10))[1] for _ in range({n})]
    print(json.dumps({{"key": key, "codes": [c["code"] for c in certs], "ids": [c["id"] for c in certs], "m": m.id}}))
"""
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return data["key"], data["codes"], data["ids"], data["m"]


def run_raw(
    url: str, ids: list[int], merchant_id: int, clients: int, seconds: float
) -> tuple[int, list[float], dict[str, float]]:
    """The raw spend transaction from `clients` threads for `seconds`; the CPU of their
    backends is measured over the run (connections open before it starts)."""
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
                cert_id = ids[n % len(ids)]
                n += clients
                t0 = time.perf_counter()
                with conn.transaction():
                    conn.execute("SELECT balance FROM gift_certificates WHERE id = %s FOR UPDATE", (cert_id,))
                    conn.execute(
                        "UPDATE gift_certificates SET balance = balance - %s, updated_at = now() WHERE id = %s",
                        (SPEND, cert_id),
                    )
                    conn.execute(
                        "INSERT INTO certificate_entries (merchant_id, certificate_id, kind, amount, actor_type, "
                        "created_at) VALUES (%s, %s, 'spend', %s, 'api_key', now())",
                        (merchant_id, cert_id, -SPEND),
                    )
                mine.append(time.perf_counter() - t0)
            with lock:
                latencies.extend(mine)
            done.wait()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    connected.wait()
    meter = Meter(backend_pids(url))
    box.append(time.monotonic() + seconds)
    meter.start()
    ready.wait()
    done.wait()
    got = meter.stop()
    for t in threads:
        t.join()
    return len(latencies), latencies, got


async def http_client(
    port: int | list[int],
    key: str,
    codes: list[str],
    start: int,
    step: int,
    stop: float,
    out: list[float],
    errors: list[str],
) -> None:
    # One server per process (bench/checkout.start_server): client i talks to server i mod n.
    if isinstance(port, list):
        port = port[start % len(port)]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    n = start
    body = json.dumps({"amount": SPEND}).encode()
    while time.monotonic() < stop:
        code = codes[n % len(codes)]
        n += step
        head = (
            f"POST /api/v1/certificates/{code}/redemptions HTTP/1.1\r\nHost: bench\r\n"
            f"Authorization: Bearer {key}\r\nIdempotency-Key: {uuid.uuid4().hex}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
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
    port: list[int], key: str, codes: list[str], clients: int, seconds: float
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


def measure_http(
    url: str, ports: list[int], pids: list[int], key: str, codes: list[str], args: argparse.Namespace
) -> dict[str, float]:
    backends = backend_pids(url)  # the servers' pooled connections, open since warm-up
    server_meter, pg_meter = Meter(pids), Meter(backends)
    server_meter.start()
    pg_meter.start()
    n, lat, errors = run_http(ports, key, codes, args.clients, args.seconds)
    srv, pg = server_meter.stop(), pg_meter.stop()
    if errors:
        sys.exit(f"{len(errors)} failed requests, first: {errors[0]}")
    return {
        "rate": n / args.seconds,
        "p50": pct(lat, 0.5) * 1000,
        "p99": pct(lat, 0.99) * 1000,
        "server_ms": srv["procs"] / max(n, 1) * 1000,
        "pg_ms": pg["procs"] / max(n, 1) * 1000,
    }


def measure_raw(url: str, ids: list[int], merchant_id: int, args: argparse.Namespace) -> dict[str, float]:
    n, lat, got = run_raw(url, ids, merchant_id, args.clients, args.seconds)
    return {
        "raw_rate": n / args.seconds,
        "raw_p99": pct(lat, 0.99) * 1000,
        "raw_pg_ms": got["procs"] / max(n, 1) * 1000,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--certificates", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=2, help="server processes")
    ap.add_argument("--general", action="store_true", help="also the general path's servers, each round")
    args = ap.parse_args()

    url, name = create_database("lwbenchcert")
    data_dir = tempfile.mkdtemp(prefix="lwbench-")
    rows: list[dict[str, float]] = []
    rc = 0
    try:
        key, codes, ids, merchant_id = seed(url, data_dir, args.certificates)
        ports = [free_port() for _ in range(args.workers)]
        servers = [start_server(url, data_dir, p) for p in ports]
        gports = [free_port() for _ in range(args.workers)] if args.general else []
        gservers = [start_server(url, data_dir, p, fast=False) for p in gports]
        try:
            run_http(ports, key, codes, args.clients, 2)  # warm-up: imports, prepared statements
            if gports:
                run_http(gports, key, codes, args.clients, 2)
            run_raw(url, ids, merchant_id, args.clients, 1)
            print(
                f"certificate spend bench: {args.clients} concurrent clients, {args.rounds} rounds of "
                f"{args.seconds:.0f} s per side, {args.certificates} certificates, {args.workers} server process(es)"
            )
            print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
            for r in range(args.rounds):
                row: dict[str, float] = {}
                sides = ["raw", "http"] + (["general"] if args.general else [])
                for side in sides[r % len(sides) :] + sides[: r % len(sides)]:
                    if side == "raw":
                        row.update(measure_raw(url, ids, merchant_id, args))
                    elif side == "http":
                        got = measure_http(url, ports, [p.pid for p in servers], key, codes, args)
                        row.update({f"http_{k}": v for k, v in got.items()})
                    else:
                        got = measure_http(url, gports, [p.pid for p in gservers], key, codes, args)
                        row.update({f"gen_{k}": v for k, v in got.items()})
                row["ratio"] = row["http_rate"] / row["raw_rate"]
                if args.general:
                    row["gen_ratio"] = row["gen_rate"] / row["raw_rate"]
                rows.append(row)
                print(
                    f"round {r + 1}: raw {row['raw_rate']:6.0f}/s p99 {row['raw_p99']:5.1f} ms | "
                    f"http {row['http_rate']:5.0f}/s p50 {row['http_p50']:5.1f} p99 {row['http_p99']:6.1f} ms | "
                    f"ratio {row['ratio']:.2f} | per spend: server {row['http_server_ms']:.2f} ms, "
                    f"PostgreSQL {row['http_pg_ms']:.2f} ms CPU | raw tx: PostgreSQL {row['raw_pg_ms']:.2f} ms "
                    f"CPU | load {os.getloadavg()[0]:.2f}",
                    flush=True,
                )
                if args.general:
                    print(
                        f"         general path: http {row['gen_rate']:5.0f}/s p99 {row['gen_p99']:6.1f} ms | "
                        f"ratio {row['gen_ratio']:.2f} | server {row['gen_server_ms']:.2f} ms, "
                        f"PostgreSQL {row['gen_pg_ms']:.2f} ms CPU per spend",
                        flush=True,
                    )
        finally:
            for server in servers + gservers:
                server.send_signal(signal.SIGINT)
            for server in servers + gservers:
                try:
                    server.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    server.kill()
        col = {k: [row[k] for row in rows] for k in rows[0]}
        print()
        print(f"over {len(rows)} rounds (min / median / max):")
        print(
            f"  ratio http/raw          {spread(col['ratio'])}   (goal: median >= 0.35; 0.45 as for purchases)"
        )
        print(f"  http p99, ms            {spread(col['http_p99'], '{:.1f}')}")
        print(f"  http tx/s               {spread(col['http_rate'], '{:.0f}')}")
        print(f"  raw tx/s                {spread(col['raw_rate'], '{:.0f}')}")
        print(f"  server CPU ms/spend     {spread(col['http_server_ms'])}")
        print(f"  PostgreSQL CPU ms/spend {spread(col['http_pg_ms'])}   (raw tx: {spread(col['raw_pg_ms'])})")
        if args.general:
            print(f"  general path: ratio     {spread(col['gen_ratio'])}")
            print(f"  general path: p99, ms   {spread(col['gen_p99'], '{:.1f}')}")
            print(f"  general: server CPU ms  {spread(col['gen_server_ms'])}")
            print(f"  general: PostgreSQL ms  {spread(col['gen_pg_ms'])}")
        print(f"  load average after      {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        rc, out = check_ledger(url, data_dir)
        print(f"check-ledger: {'clean' if rc == 0 else 'PROBLEMS'}" + ("" if rc == 0 else f"\n{out}"))
    finally:
        drop_database(name)
    if rc != 0:
        sys.exit(1)


if __name__ == "__main__":
    main()
