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
        outbox row, and answers with the certificate).

Usage:  .venv/bin/python bench/certificates.py [--seconds 5] [--rounds 3] [--clients 16]
        [--certificates 2000] [--workers 2]
Needs PostgreSQL at 127.0.0.1:5432 (trust auth); creates and drops its own database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import psycopg

from benchkit import create_database, drop_database, free_port
from checkout import pct, start_server

SPEND = 100


def report(name: str, n: int, seconds: float, latencies: list[float]) -> float:
    rate = n / seconds
    print(
        f"  {name:<5} {rate:8.0f} tx/s   p50 {pct(latencies, 0.5) * 1000:7.1f} ms   "
        f"p99 {pct(latencies, 0.99) * 1000:7.1f} ms   (n={n})"
    )
    return rate


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
) -> tuple[int, list[float]]:
    stop = time.monotonic() + seconds
    latencies: list[float] = []
    lock = threading.Lock()

    def client(i: int) -> None:
        mine: list[float] = []
        with psycopg.connect(url, prepare_threshold=1) as conn:
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

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(latencies), latencies


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--certificates", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=2, help="server processes")
    args = ap.parse_args()

    url, name = create_database("lwbenchcert")
    data_dir = tempfile.mkdtemp(prefix="lwbench-")
    ratios: list[float] = []
    failed: list[str] = []
    try:
        key, codes, ids, merchant_id = seed(url, data_dir, args.certificates)
        ports = [free_port() for _ in range(args.workers)]
        servers = [start_server(url, data_dir, p) for p in ports]
        port = ports
        try:
            run_http(port, key, codes, args.clients, 2)  # warm-up: imports, prepared statements
            run_raw(url, ids, merchant_id, args.clients, 1)
            print(
                f"certificate spend bench: {args.clients} concurrent clients, {args.rounds} rounds of "
                f"{args.seconds:.0f} s per side, {args.certificates} certificates, {args.workers} server process(es)"
            )
            print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
            for r in range(args.rounds):
                n_http, lat_http, errors = run_http(port, key, codes, args.clients, args.seconds)
                n_raw, lat_raw = run_raw(url, ids, merchant_id, args.clients, args.seconds)
                failed.extend(errors)
                print(f"round {r + 1}")
                raw = report("raw", n_raw, args.seconds, lat_raw)
                http = report("http", n_http, args.seconds, lat_http)
                ratios.append(http / raw)
                print(
                    f"  ratio http/raw = {http / raw:.2f}   http p99 {pct(lat_http, 0.99) * 1000:.1f} ms   "
                    f"load {os.getloadavg()[0]:.2f}"
                )
        finally:
            for server in servers:
                server.send_signal(signal.SIGINT)
            for server in servers:
                server.wait(timeout=30)
        print(
            f"ratio http/raw over {len(ratios)} rounds: min {min(ratios):.2f}  median {statistics.median(ratios):.2f}  "
            f"max {max(ratios):.2f}   (goal >= 0.35, as for purchases)"
        )
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        if failed:
            print(f"{len(failed)} failed requests, first: {failed[0]}")
            sys.exit(1)
    finally:
        drop_database(name)


if __name__ == "__main__":
    main()
