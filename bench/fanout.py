"""Campaign fan-out: a push campaign to N cards through the outbox worker, against the
raw wallet clients' rates, in the same run, to the same local fakes, over several rounds.

Every card is in Apple Wallet (one registered device) and in Google Wallet (an object).
- raw:    the standard APNs client, httpx as main used it until issue 14
          (bench/httpx_apns.py: push_many of 100 as an asyncio.gather on one HTTP/2
          connection; the product's client is now our own on h2) to the local fake APNs
          (HTTP/2 + TLS, its own process), and the Google
          Wallet REST client (WalletClient.batch: Google's batch request, 100 addMessage
          calls each, as the worker sends them; and add_message one by one) from
          `--raw-threads` threads (default: workers x the Google part's CONCURRENCY, the
          batch requests the workers can have in flight at once) to the fake Google (in
          this process). From a process of its own, each round, on `--raw` calls (default:
          the campaign's cards, at most 10,000), measured one after the other ("alone")
          and both at once ("together").
- worker: `--workers` `loyalwallet worker` processes (`--bulk-threads` bulk-lane
          threads each, the lane campaigns run in; the bulk lane polls every 0.05 s),
          started before the first round (as in production: workers are running when a
          campaign is sent). Each round a campaign (campaigns.service.create with
          send_now) to the N cards: campaign.start, campaign.deliver (the message on
          every card of a chunk of MESSAGE_CHUNK cards, one card.changed and ONE batched
          google.message row per chunk), the Apple listener (one multiplexed apple.push
          row per 500 tokens), the pushes, the Google batch requests (concurrent).
          The clock starts when the campaign is committed and stops at the last delivery
          as the database recorded it: Apple's rate is N / (the last apple.push row's
          delivered_at - start), Google's N / (the last google_message_sends row's
          created_at, written when its batch answer is recorded, - start).

Prints per round and min/median/max: the Apple and Google ratios worker/raw (against the
raw client measured alone in the same round, and against both raw clients at once), the
worker CPU per card (utime+stime of the worker processes from /proc, over the round),
PostgreSQL CPU per card (its backends, from /proc) and the campaign's wall time.

Usage: .venv/bin/python bench/fanout.py [--cards 10000] [--rounds 5] [--bulk-threads 4]
           [--workers 2] [--raw N] [--raw-threads T] [--points 0] [--no-apple] [--database-url URL]
Default database: a fresh PostgreSQL database at 127.0.0.1:5432 (trust auth), dropped
at the end; `--database-url sqlite:///path` for the embedded default.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the local fakes of outside services live there

from benchkit import create_database, drop_database, start_fake_apns  # noqa: E402


def seed(n_cards: int, fake, apple: bool = True) -> tuple[int, list[str]]:  # type: ignore[no-untyped-def]
    """A merchant with a Google issuer the fake knows, N guests who agreed to marketing,
    each with a card whose Google object exists (at the fake and in our table)."""
    from cryptography.hazmat.primitives import serialization
    from sqlalchemy import insert, select

    from loyalwallet import crypto, db
    from loyalwallet.cards.models import Card
    from loyalwallet.customers.models import Customer
    from loyalwallet.merchants.actors import system
    from loyalwallet.merchants.service import create_merchant
    from loyalwallet.programs.models import Program
    from loyalwallet.programs.service import create_program
    from loyalwallet.wallet.google import objects
    from loyalwallet.wallet.google.issuer import build_object, id_prefix, import_key, issuer_for
    from loyalwallet.wallet.google.keys import development_key_file
    from loyalwallet.wallet.google.models import GoogleObject
    from loyalwallet.wallet.google.sync import sync_program

    key_file = development_key_file("fanout-bench")
    pem = json.loads(key_file)["private_key"].encode()
    fake.register(
        json.loads(key_file)["client_email"],
        serialization.load_pem_private_key(pem, password=None).public_key(),
    )
    rules = {"tiers": [{"name": "Base", "min_spend": 0, "cashback_pct": 5}]}
    with db.transaction() as session:
        merchant = create_merchant(session, "Fan-out café")
        program = create_program(session, system(merchant.id), "bonus", "Bonus", rules)
        import_key(session, key_file, fake.issuer_id, merchant.id)
        merchant_id, program_id = merchant.id, program.id
    now = db.utcnow()
    batch = 5000
    for start in range(0, n_cards, batch):
        rows = range(start, min(n_cards, start + batch))
        with db.transaction() as session:
            ids = session.scalars(
                insert(Customer).returning(Customer.id),
                [
                    {
                        "merchant_id": merchant_id,
                        "phone_index": f"fanout-{n}",
                        "marketing_consent": True,
                        "created_at": now,
                    }
                    for n in rows
                ],
            ).all()
            session.execute(
                insert(Card),
                [
                    {
                        "merchant_id": merchant_id,
                        "program_id": program_id,
                        "customer_id": customer_id,
                        "code": f"{9_000_000_000_000 + n}",
                        "serial": crypto.token(16),
                        "auth_token": crypto.token(24),
                        "public_token": crypto.token(24),
                        "status": "active",
                        "balance": 0,
                        "stamps": 0,
                        "tier": "Base",
                        "spend": 0,
                        "visits": 0,
                        "version": 1,
                        "pass_updated_at": now,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for n, customer_id in zip(rows, ids, strict=True)
                ],
            )
    # Google objects: built by the Google part itself, stored at the fake and in our table.
    with db.transaction() as session:
        issuer = issuer_for(session, merchant_id)
        assert issuer is not None
        program = session.get(Program, program_id)
        first = session.scalars(select(Card).where(Card.merchant_id == merchant_id).order_by(Card.id)).first()
        sample = build_object(session, issuer, first, program)
        class_id = sample["classId"]
        oids = []
        rows = []
        cards = session.execute(
            select(Card.id, Card.serial, Card.code, Card.version)
            .where(Card.merchant_id == merchant_id)
            .order_by(Card.id)
        ).all()
        card_keys = [(card.id, card.serial) for card in cards]
        for card in cards:
            # The Google part's object for the first card; the others differ in their id,
            # number and barcode (building each costs seconds per thousand cards).
            obj = {
                **sample,
                "id": objects.object_id(issuer.issuer_id, id_prefix(), card.serial),
                "accountId": card.code,
                "barcode": {**sample["barcode"], "value": card.code, "alternateText": card.code},
            }
            fake.objects[obj["id"]] = obj
            oids.append(obj["id"])
            rows.append(
                {
                    "card_id": card.id,
                    "merchant_id": merchant_id,
                    "object_id": obj["id"],
                    "inserted": True,
                    "class_id": class_id,
                    # As after a first sync: the same content hash, a link already signed.
                    "synced_hash": objects.content_hash(obj),
                    "save_jwt": "signed-at-first-sync",
                    "jwt_key_id": issuer.key_id,
                    "jwt_kind": "ref",
                    "synced_version": card.version,
                    "messages": [],
                    "notified_at": [],
                    "created_at": now,
                    "updated_at": now,
                }
            )
        for i in range(0, len(rows), batch):
            session.execute(insert(GoogleObject), rows[i : i + batch])
    sync_program(program_id)  # the classes exist at the fake, as after import-key
    # Apple: the installation's certificate, a team key for token auth, one device per card.
    from cryptography.hazmat.primitives.asymmetric import ec

    from loyalwallet.wallet.apple import certs, credentials
    from loyalwallet.wallet.apple.models import AppleRegistration

    team_key = ec.generate_private_key(ec.SECP256R1())
    p8 = team_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with db.transaction() as session:
        cert = credentials.ensure_development_certificate(session)
        credentials.store_push_key(session, p8, "KEYID00001", certs.DEV_TEAM_ID)
        pass_type_id = cert.pass_type_id
        regs = [
            {
                "merchant_id": merchant_id,
                "device_id": f"device{n:08d}",
                "pass_type_id": pass_type_id,
                "serial": serial,
                "card_id": card_id,
                "push_token": f"{n:064x}",
                "change_seq": 0,
                "created_at": now,
                "updated_at": now,
            }
            for n, (card_id, serial) in enumerate(card_keys)
        ]
        for i in range(0, len(regs) if apple else 0, batch):  # --no-apple: no devices
            session.execute(insert(AppleRegistration), regs[i : i + batch])
    return merchant_id, oids


RAW_CPU: dict[int, float] = {}


def raw_google(merchant_id: int, oids: list[str], n: int, threads: int, batch: int = 1) -> float:
    """addMessage calls from `threads` threads: one by one (batch=1), or `batch` calls per
    batch request (WalletClient.batch, as the worker sends a chunk)."""
    from loyalwallet import db
    from loyalwallet.wallet.google.client import WalletClient
    from loyalwallet.wallet.google.issuer import issuer_for

    with db.read() as session:
        issuer = issuer_for(session, merchant_id)
        assert issuer is not None
    client = WalletClient(issuer.creds)
    client.get("loyaltyObject", oids[0])  # a token first, as the worker has one too

    def message(i: int) -> dict[str, Any]:
        return {"id": f"raw-{batch}-{i}", "header": "Raw", "body": "Raw client", "messageType": "TEXT"}

    import httpx

    resets: list[int] = []

    def one(i: int) -> None:
        # A connection the loaded machine reset is tried again (counted, printed), as the
        # worker's outbox would try its row again.
        for attempt in range(3):
            try:
                send(i)
                return
            except httpx.TransportError:
                resets.append(i)
                if attempt == 2:
                    raise

    def send(i: int) -> None:
        if batch == 1:
            client.add_message("loyaltyObject", oids[i % len(oids)], message(i))
            return
        calls = [
            (
                "POST",
                WalletClient._path("loyaltyObject", oids[k % len(oids)], "addMessage"),
                {"message": message(k)},
            )
            for k in range(i, min(n, i + batch))
        ]
        assert all(status == 200 for status, _ in client.batch(calls))

    started, cpu0 = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(0, n, batch)))
    rate = n / (time.perf_counter() - started)
    RAW_CPU[batch] = (time.process_time() - cpu0) * 1000 / n  # this process's CPU per call, ms
    if resets:
        print(
            f"raw Google (batch {batch}): {len(resets)} connection(s) reset and tried again", file=sys.stderr
        )
    return rate


def _raw_apns_pusher():  # type: ignore[no-untyped-def]
    """The httpx baseline client with the installation's APNs key, as the worker's route."""
    from sqlalchemy import select

    from httpx_apns import HttpxPusher
    from loyalwallet import db
    from loyalwallet.config import env
    from loyalwallet.wallet.apple import apns, credentials
    from loyalwallet.wallet.apple.models import AppleCertificate

    with db.read() as session:
        pass_type_id = session.scalars(
            select(AppleCertificate.pass_type_id).order_by(AppleCertificate.id)
        ).first()
        assert pass_type_id is not None
        route = credentials.push_route(session, pass_type_id)
    assert route is not None and route.pusher is not None, route
    apns.release(route.pusher)
    client = HttpxPusher(apns.base_url(), token_auth=route.pusher.token_auth, ca_file=env("APNS_CA_FILE"))
    return client, route.topic


def raw_apns(n: int) -> float:
    """The standard client (httpx) to the fake: `push_many` (multiplexed, batches of 100,
    as a campaign chunk's apple.push row), from one thread."""
    client, topic = _raw_apns_pusher()
    tokens = [f"{i:064x}" for i in range(n)]
    assert client.push(tokens[0], topic).ok  # connect and sign the provider token
    started = time.perf_counter()
    for i in range(0, n, 100):
        assert all(r.ok for r in client.push_many([(t, topic) for t in tokens[i : i + 100]]))
    rate = n / (time.perf_counter() - started)
    client.close()
    return rate


def raw_apns_shaped(n: int, threads: int) -> None:
    """One of the --workers processes of the raw baseline at the worker's concurrency:
    `threads` threads, each push_many of 100 on the process's one client, n pushes in all.
    Says "ready" once connected, starts on a line from stdin, prints its start and end."""
    client, topic = _raw_apns_pusher()
    tokens = [f"{i:064x}" for i in range(n)]
    assert all(r.ok for r in client.push_many([(t, topic) for t in tokens[:100]]))
    print("ready", flush=True)
    sys.stdin.readline()
    chunks = [tokens[i : i + 100] for i in range(0, n, 100)]

    def run(k: int) -> None:
        for chunk in chunks[k::threads]:
            assert all(r.ok for r in client.push_many([(t, topic) for t in chunk]))

    started = time.time()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(run, range(threads)))
    print(json.dumps({"start": started, "end": time.time(), "n": n}), flush=True)
    client.close()


def raw_apns_at_worker_concurrency(args, env: dict[str, str]) -> float:  # type: ignore[no-untyped-def]
    """`--workers` raw processes at once (see raw_apns_shaped): pushes / (last end - first start)."""
    n = args.raw_apns // args.workers
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--raw-apns-shaped", str(args.bulk_threads), "--raw-apns", str(n)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(args.workers)
    ]
    for proc in procs:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("ready"):
            raise SystemExit(f"the shaped raw client failed: {line!r}")
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    spans = []
    for proc in procs:
        out, _ = proc.communicate(timeout=3600)
        spans.append(json.loads(out.strip().splitlines()[-1]))
    return sum(s["n"] for s in spans) / (max(s["end"] for s in spans) - min(s["start"] for s in spans))


def raw_client(merchant_id: int, oids: list[str], n: int, threads: int, apns_n: int) -> dict[str, float]:
    """`n` Google calls in batches (one by one: at most 2,000, the old baseline); `apns_n`
    pushes (0: no APNs, as with --no-apple; "together" is then Google alone again)."""
    google_one = raw_google(merchant_id, oids, min(n, 2000), threads)
    google = raw_google(merchant_id, oids, n, threads, batch=100)
    cpu = RAW_CPU[100]
    if not apns_n:
        return {
            "google_one": google_one,
            "google": google,
            "apns": float("nan"),
            "google_together": google,
            "apns_together": float("nan"),
        }
    apns = raw_apns(apns_n)
    with ThreadPoolExecutor(2) as pool:  # both at once, as the worker delivers them
        g = pool.submit(raw_google, merchant_id, oids, n, threads, 100)
        a = pool.submit(raw_apns, apns_n)
        google_together, apns_together = g.result(), a.result()
    return {
        "google_one": google_one,
        "google": google,
        "apns": apns,
        "google_together": google_together,
        "apns_together": apns_together,
        "google_cpu_ms": cpu,
    }


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes (all their threads), from /proc."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICK


def postgres_pids(database: str) -> list[int]:
    """The server processes of this database's connections (PostgreSQL on this machine)."""
    import psycopg

    from benchkit import SERVER

    with psycopg.connect(SERVER, autocommit=True) as conn:
        return [
            int(r[0])
            for r in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (database,))
        ]


def spread(values: list[float]) -> str:
    ordered = sorted(values)
    return f"{ordered[0]:.2f} / {statistics.median(ordered):.2f} / {ordered[-1]:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cards", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=8, help="interactive-lane threads per worker")
    parser.add_argument("--bulk-threads", type=int, default=4, help="bulk-lane threads per worker")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--message-chunk", type=int, default=0, help="cards per chunk (product default)")
    parser.add_argument("--raw", type=int, default=0, help="raw calls (default: cards, at most 10,000)")
    parser.add_argument(
        "--raw-apns", type=int, default=-1, help="raw pushes (default: 2,000; 0 with --no-apple)"
    )
    parser.add_argument("--raw-threads", type=int, default=0, help="default: workers x Google CONCURRENCY")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--points", type=int, default=0)
    # --no-apple: no Apple devices, the Google side alone (the raw APNs client still runs).
    parser.add_argument("--apple", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--raw-client", type=int, default=0, help=argparse.SUPPRESS)  # internal
    parser.add_argument("--raw-apns-shaped", type=int, default=0, help=argparse.SUPPRESS)  # internal
    args = parser.parse_args()
    if args.raw_apns_shaped:
        from loyalwallet import db, wiring
        from loyalwallet.config import configure, load_settings

        db.init_engine(configure(load_settings()))
        wiring.install()
        raw_apns_shaped(args.raw_apns, args.raw_apns_shaped)
        return
    if not args.raw:
        args.raw = min(args.cards, 10_000)
    if args.raw_apns < 0:  # the fake APNs answers 20-70 pushes/s on a loaded machine
        args.raw_apns = min(args.cards, 2000) if args.apple else 0
    if args.raw_client:  # the raw side, in its own process like the workers
        from loyalwallet import db, wiring
        from loyalwallet.config import configure, load_settings

        db.init_engine(configure(load_settings()))
        wiring.install()  # as every entry point: handlers, hooks, wallet sources
        oids = json.loads(sys.stdin.read())
        print(json.dumps(raw_client(args.raw_client, oids, args.raw, args.raw_threads, args.raw_apns)))
        return

    if args.message_chunk:  # read by campaigns.service at import, here and in the workers
        os.environ["LOYALWALLET_CAMPAIGN_MESSAGE_CHUNK"] = str(args.message_chunk)
    tmp = Path(tempfile.mkdtemp(prefix="lwfanout-"))
    pg_name = None
    url = args.database_url
    if url is None:
        url, pg_name = create_database("lwfanout")
    from fakes.google_wallet import FakeGoogleWallet

    apns_proc, apns_url, apns_ca = start_fake_apns(tmp / "apns")
    fake = FakeGoogleWallet().start()
    # Headers and body go out as two writes: without TCP_NODELAY every answer waits for
    # the client's delayed ACK (~40 ms) and the fake, not our code, sets the pace.
    assert fake.server is not None
    fake.server.RequestHandlerClass.disable_nagle_algorithm = True  # type: ignore[attr-defined]
    os.environ.update(
        {
            "LOYALWALLET_GOOGLE_API_URL": fake.api_url,
            "LOYALWALLET_GOOGLE_TOKEN_URL": fake.token_url,
            "LOYALWALLET_APNS_URL": apns_url,
            "LOYALWALLET_APNS_CA_FILE": apns_ca,
            "LOYALWALLET_DATA_DIR": str(tmp),
        }
    )
    from loyalwallet import db, wiring
    from loyalwallet.config import configure, load_settings
    from loyalwallet.migrations import migrate

    settings = configure(load_settings(tmp, url))
    migrate(settings.database_url)
    db.init_engine(settings)
    wiring.install()  # as every entry point: handlers, hooks, wallet sources
    procs: list[subprocess.Popen[bytes]] = []
    try:
        t = time.perf_counter()
        merchant_id, oids = seed(args.cards, fake, args.apple)
        print(
            f"seeded {args.cards} cards in Apple and Google Wallet in {time.perf_counter() - t:.0f} s",
            flush=True,
        )
        env = {**os.environ, "LOYALWALLET_DATABASE_URL": settings.database_url}
        worker_env = {
            **env,
            "LOYALWALLET_WORKER_THREADS": str(args.threads),
            "LOYALWALLET_WORKER_BULK_THREADS": str(args.bulk_threads),
            "LOYALWALLET_WORKER_POLL_SECONDS": "0.05",
            "LOYALWALLET_WORKER_BULK_POLL_SECONDS": "0.05",
        }
        if not args.raw_threads:
            from loyalwallet.wallet.google.messages import CONCURRENCY

            args.raw_threads = args.workers * CONCURRENCY
        from loyalwallet.campaigns.service import MESSAGE_CHUNK

        print(
            f"workers {args.workers} x {args.bulk_threads} bulk threads, {MESSAGE_CHUNK} cards per chunk; "
            f"raw client: {args.raw} Google calls from {args.raw_threads} threads, {args.raw_apns} APNs pushes",
            flush=True,
        )
        for _ in range(args.workers):
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "loyalwallet.cli", "worker"],
                    env=worker_env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        rounds = [
            one_round(n, args, merchant_id, oids, fake, env, procs, pg_name) for n in range(args.rounds)
        ]
        print(f"\nsummary over {len(rounds)} rounds, {args.cards} cards, min / median / max:")
        for key, label in (
            ("apple", "Apple pushes / raw push_many alone"),
            ("google", "Google messages / raw addMessage in batches of 100 alone"),
            ("google_one", "Google messages / raw addMessage one by one alone"),
            ("apple_together", "Apple pushes / raw push_many (both raw clients at once)"),
            (
                "apple_shaped",
                "Apple pushes / raw push_many at the worker's concurrency (workers x bulk threads)",
            ),
            ("google_together", "Google messages / raw addMessage batches (both raw clients at once)"),
            ("cpu_ms", "worker CPU per card, ms"),
            ("raw_cpu_ms", "raw Google client CPU per call (batches of 100, its process), ms"),
            ("pg_ms", "PostgreSQL CPU per card, ms"),
            ("wall", "campaign wall time (every row done), s"),
            ("first", "first push / first message after the send, s"),
        ):
            print(f"  {label}: {spread([r[key] for r in rounds])}")
        print(f"load average: {Path('/proc/loadavg').read_text().strip()}")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)
        fake.stop()
        assert apns_proc.stdin is not None
        apns_proc.stdin.close()
        apns_proc.wait(10)
        db.get_engine().dispose()
        if pg_name:
            drop_database(pg_name)


def one_round(  # type: ignore[no-untyped-def]
    n: int, args, merchant_id: int, oids: list[str], fake, env: dict[str, str], procs, pg_name: str | None
) -> dict[str, float]:
    from sqlalchemy import func, select, update

    from loyalwallet import db
    from loyalwallet.campaigns import service as campaigns
    from loyalwallet.campaigns.models import Campaign
    from loyalwallet.merchants.actors import system
    from loyalwallet.outbox.models import OutboxMessage
    from loyalwallet.wallet.google.models import GoogleMessageSend, GoogleObject

    # The raw clients run in a process of their own, as the workers do; the fake Google
    # stays in this one, the fake APNs in its own, for both measurements.
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--raw-client",
            str(merchant_id),
            "--raw",
            str(args.raw),
            "--raw-threads",
            str(args.raw_threads),
            "--raw-apns",
            str(args.raw_apns),
        ],
        input=json.dumps(oids[: args.raw]),
        env=env,
        capture_output=True,
        text=True,
    )
    if out.returncode:
        raise SystemExit(f"the raw client failed:\n{out.stderr[-3000:]}")
    for line in out.stderr.splitlines():
        if "tried again" in line:
            print(f"  {line}")
    raw = json.loads(out.stdout.strip().splitlines()[-1])
    raw["apns_shaped"] = raw_apns_at_worker_concurrency(args, env) if args.raw_apns else float("nan")
    # Every round starts alike: no messages on the objects, no notifications used up.
    with fake.lock:
        for obj in fake.objects.values():
            obj["messages"] = []
        fake.notified.clear()
        fake.calls.clear()
    with db.transaction() as session:
        session.execute(update(GoogleObject).values(messages=[], notified_at=[]))
        first_row = int(session.scalar(select(func.max(OutboxMessage.id))) or 0)
    pids = [p.pid for p in procs]
    pg = postgres_pids(pg_name) if pg_name else []
    cpu0, pg0 = cpu_seconds(pids), cpu_seconds(pg)
    with db.transaction() as session:
        c = campaigns.create(
            session,
            system(merchant_id),
            {
                "name": f"Fan-out {n}",
                "header": "Autumn menu",
                "body": "Pumpkin latte is back",
                "points": args.points,
                "send_now": True,
            },
        )
        campaign_id = c.id
    started = time.perf_counter()
    started_at = db.utcnow()  # the campaign is committed: the clock starts
    batch = f"campaign-{campaign_id}"

    def counts() -> tuple[int, int, int, bool]:
        with db.read() as session:
            messaged = session.scalar(
                select(func.count()).where(
                    GoogleMessageSend.batch == batch, GoogleMessageSend.status == "sent"
                )
            )
            pushed = sum(
                len(p.get("tokens") or [p["token"]])
                for p in session.scalars(
                    select(OutboxMessage.payload).where(
                        OutboxMessage.id > first_row,
                        OutboxMessage.topic == "apple.push",
                        OutboxMessage.status == "done",
                    )
                )
            )
            pending = session.scalar(
                select(func.count()).where(OutboxMessage.id > first_row, OutboxMessage.status == "pending")
            )
            status = session.scalar(select(Campaign.status).where(Campaign.id == campaign_id))
        return int(messaged or 0), pushed, int(pending or 0), status == "sent"

    messages_at = pushes_at = first_push = first_message = None
    last_report = started
    while True:
        time.sleep(0.1)
        messaged, pushed, pending, sent = counts()
        now = time.perf_counter()
        if first_push is None and pushed:
            first_push = now - started
        if first_message is None and messaged:
            first_message = now - started
        if messages_at is None and messaged >= args.cards:
            messages_at = now - started
        if pushes_at is None and pushed >= (args.cards if args.apple else 0):
            pushes_at = now - started
        if now - last_report > 15:
            print(
                f"  {now - started:5.0f} s: {pushed} Apple pushes, {messaged} Google messages, {pending} rows pending"
            )
            last_report = now
        if messages_at is not None and pushes_at is not None and pending == 0 and sent:
            wall = now - started
            break
        if now - started > 7200:
            raise SystemExit("gave up after two hours")
    cpu = cpu_seconds(pids) - cpu0
    pg_cpu = cpu_seconds(pg) - pg0 if pg else float("nan")
    delivered = sum(
        1 for o in fake.objects.values() for m in o.get("messages", []) if m["header"] == "Autumn menu"
    )
    with db.read() as session:
        dead = session.scalar(
            select(func.count()).where(OutboxMessage.id > first_row, OutboxMessage.status == "dead")
        )
        retried = session.scalar(
            select(func.count()).where(OutboxMessage.id > first_row, OutboxMessage.attempts > 1)
        )
        # Why rows were tried again (the first few distinct errors), to read with the counts.
        for topic, error in session.execute(
            select(OutboxMessage.topic, OutboxMessage.last_error)
            .where(OutboxMessage.id > first_row, OutboxMessage.attempts > 1)
            .distinct()
            .limit(3)
        ):
            print(f"  retried {topic}: {(error or '')[:300]}")
        topics = dict(
            session.execute(
                select(OutboxMessage.topic, func.count())
                .where(OutboxMessage.id > first_row)
                .group_by(OutboxMessage.topic)
            ).all()
        )
        # Where the time went: each topic's first row queued and last row done, after the send.
        timeline = session.execute(
            select(
                OutboxMessage.topic, func.min(OutboxMessage.created_at), func.max(OutboxMessage.delivered_at)
            )
            .where(OutboxMessage.id > first_row)
            .group_by(OutboxMessage.topic)
        ).all()
        # The last delivery as the database recorded it (not the poll's 0.1 s tick).
        last_message = session.scalar(
            select(func.max(GoogleMessageSend.created_at)).where(GoogleMessageSend.batch == batch)
        )
        last_push = session.scalar(
            select(func.max(OutboxMessage.delivered_at)).where(
                OutboxMessage.id > first_row, OutboxMessage.topic == "apple.push"
            )
        )
    print(
        "  timeline (queued first / done last, s after the send): "
        + ", ".join(
            f"{topic} {(a - started_at).total_seconds():.2f}/{(b - started_at).total_seconds():.2f}"
            for topic, a, b in sorted(timeline, key=lambda t: t[1])
            if a is not None and b is not None
        ),
        flush=True,
    )
    if last_message is not None:
        messages_at = (last_message - started_at).total_seconds()
    if args.apple and last_push is not None:
        pushes_at = (last_push - started_at).total_seconds()
    push_rate = args.cards / pushes_at if args.apple else float("nan")
    message_rate = args.cards / messages_at
    r = {
        "apple": push_rate / raw["apns"],
        "google": message_rate / raw["google"],
        "apple_together": push_rate / raw["apns_together"],
        "apple_shaped": push_rate / raw["apns_shaped"],
        "google_together": message_rate / raw["google_together"],
        "google_one": message_rate / raw["google_one"],
        "cpu_ms": cpu * 1000 / args.cards,
        "raw_cpu_ms": raw.get("google_cpu_ms", float("nan")),
        "pg_ms": pg_cpu * 1000 / args.cards,
        "wall": wall,
        "first": min(first_push or wall, first_message or wall),
    }
    print(
        f"round {n + 1}: raw alone APNs {raw['apns']:.0f}/s, Google {raw['google']:.0f}/s in batches, "
        f"{raw['google_one']:.0f}/s one by one; together "
        f"APNs {raw['apns_together']:.0f}/s, Google {raw['google_together']:.0f}/s; raw APNs at the "
        f"worker's concurrency {raw['apns_shaped']:.0f}/s | worker: "
        f"{args.cards} pushes in {pushes_at:.1f} s = {push_rate:.0f}/s, {args.cards} messages in "
        f"{messages_at:.1f} s = {message_rate:.0f}/s, all rows in {wall:.1f} s | ratio Apple "
        f"{r['apple']:.2f} ({r['apple_together']:.2f} vs together, {r['apple_shaped']:.2f} vs the "
        f"worker's concurrency), Google {r['google']:.2f} "
        f"({r['google_together']:.2f}) | worker CPU {r['cpu_ms']:.2f} ms/card (raw client "
        f"{r['raw_cpu_ms']:.3f} ms/call), PostgreSQL "
        f"{r['pg_ms']:.2f} ms/card | {delivered} at the fake, {dead} dead, {retried} retried | rows {topics} "
        f"| load {Path('/proc/loadavg').read_text().split()[0]}",
        flush=True,
    )
    return r


if __name__ == "__main__":
    main()
