"""Campaign fan-out: a push campaign to N cards through the outbox worker, against the
raw wallet clients' rates, in the same run, to the same local fakes.

Every card is in Apple Wallet (one registered device) and in Google Wallet (an object).
- raw:    our APNs client (wallet.apple.apns.Pusher, the one the outbox uses: `push` one
          by one, and the multiplexed `push_many`) to the local fake APNs (HTTP/2 + TLS,
          its own process); the Google Wallet REST client (WalletClient.add_message) from
          `--threads` threads. Both from a process of their own.
- worker: a campaign (campaigns.service.create with send_now) to the N cards, then
          `--workers` `loyalwallet worker` processes with `--threads` threads each do what
          a real send does: campaign.start, campaign.deliver (the message on every card,
          one card.changed per chunk of 100), the Apple listener (one multiplexed
          apple.push row per chunk), the pushes, the Google addMessage, and the
          google.patch of each changed card (none for a message-only campaign: the Google
          object does not show the message). `--points N` adds points (then every Google
          object is patched too).

Prints pushes and messages per second for both and their ratios.

Usage: .venv/bin/python bench/fanout.py [--cards 100000] [--threads 8] [--workers 2]
           [--raw 4000] [--points 0] [--database-url URL]
Default database: a fresh PostgreSQL database at 127.0.0.1:5432 (trust auth), dropped
at the end; `--database-url sqlite:///path` for the embedded default.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the local fakes of outside services live there

from benchkit import create_database, drop_database, start_fake_apns  # noqa: E402


def seed(n_cards: int, fake) -> tuple[int, list[str]]:  # type: ignore[no-untyped-def]
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
    from loyalwallet.wallet.google.issuer import build_object, import_key, issuer_for
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
        cards = session.scalars(select(Card).where(Card.merchant_id == merchant_id)).all()
        sample = build_object(session, issuer, cards[0], program)
        class_id = sample["classId"]
        oids = []
        rows = []
        card_keys = [(card.id, card.serial) for card in cards]
        for card in cards:
            obj = build_object(session, issuer, card, program)
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
        for i in range(0, len(regs), batch):
            session.execute(insert(AppleRegistration), regs[i : i + batch])
    return merchant_id, oids


def raw_rate(merchant_id: int, oids: list[str], n: int, threads: int) -> float:
    from loyalwallet import db
    from loyalwallet.wallet.google.client import WalletClient
    from loyalwallet.wallet.google.issuer import issuer_for

    with db.read() as session:
        issuer = issuer_for(session, merchant_id)
        assert issuer is not None
    client = WalletClient(issuer.creds)
    client.get("loyaltyObject", oids[0])  # a token first, as the worker has one too

    def one(i: int) -> None:
        message = {"id": f"raw-{i}", "header": "Raw", "body": "Raw client", "messageType": "TEXT"}
        client.add_message("loyaltyObject", oids[i % len(oids)], message)

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(n)))
    return n / (time.perf_counter() - started)


def raw_apns(n: int) -> tuple[float, float]:
    """Our APNs client to the fake: `push` one by one (the outbox path: one apple.push row
    is one push) and `push_many` (multiplexed, batches of 100)."""
    from sqlalchemy import select

    from loyalwallet import db
    from loyalwallet.wallet.apple import credentials
    from loyalwallet.wallet.apple.models import AppleCertificate

    with db.read() as session:
        pass_type_id = session.scalars(
            select(AppleCertificate.pass_type_id).order_by(AppleCertificate.id)
        ).first()
        assert pass_type_id is not None
        route = credentials.push_route(session, pass_type_id)
    assert route is not None and route.pusher is not None, route
    tokens = [f"{i:064x}" for i in range(n)]
    assert route.pusher.push(tokens[0], route.topic).ok  # connect and sign the provider token
    started = time.perf_counter()
    for token in tokens:
        assert route.pusher.push(token, route.topic).ok
    one_by_one = n / (time.perf_counter() - started)
    started = time.perf_counter()
    for i in range(0, n, 100):
        assert all(r.ok for r in route.pusher.push_many([(t, route.topic) for t in tokens[i : i + 100]]))
    many = n / (time.perf_counter() - started)
    return one_by_one, many


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cards", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--raw", type=int, default=4000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--points", type=int, default=0)
    parser.add_argument("--raw-client", type=int, default=0, help=argparse.SUPPRESS)  # internal
    args = parser.parse_args()
    if args.raw_client:  # the raw side, in its own process like the workers
        from loyalwallet import db, wiring
        from loyalwallet.config import configure, load_settings

        db.init_engine(configure(load_settings()))
        wiring.install()  # as every entry point: handlers, hooks, wallet sources
        oids = json.loads(sys.stdin.read())
        google_rate = raw_rate(args.raw_client, oids, args.raw, args.threads)
        one, many = raw_apns(args.raw)
        print(json.dumps({"google": google_rate, "apns_one": one, "apns_many": many}))
        return

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
        merchant_id, oids = seed(args.cards, fake)
        print(
            f"seeded {args.cards} cards in Apple and Google Wallet in {time.perf_counter() - t:.0f} s",
            flush=True,
        )

        # The raw clients run in a process of their own, as the workers do; the fake
        # Google stays in this one, the fake APNs in its own, for both measurements.
        env = {**os.environ, "LOYALWALLET_DATABASE_URL": settings.database_url}
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--raw-client",
                str(merchant_id),
                "--raw",
                str(args.raw),
                "--threads",
                str(args.threads),
            ],
            input=json.dumps(oids[: args.raw]),
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        raw = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"raw Google client: {raw['google']:.0f} addMessage/s ({args.threads} threads, {args.raw} calls)"
        )
        print(
            f"raw APNs client: {raw['apns_one']:.0f} pushes/s one by one (Pusher.push), "
            f"{raw['apns_many']:.0f} pushes/s multiplexed (push_many x100)",
            flush=True,
        )
        for obj in fake.objects.values():  # the raw messages must not crowd the campaign's out
            obj["messages"] = []

        from sqlalchemy import func, select

        from loyalwallet.campaigns import service as campaigns
        from loyalwallet.campaigns.models import Campaign
        from loyalwallet.merchants.actors import system
        from loyalwallet.outbox.models import OutboxMessage

        with db.transaction() as session:
            c = campaigns.create(
                session,
                system(merchant_id),
                {
                    "name": "Fan-out",
                    "header": "Autumn menu",
                    "body": "Pumpkin latte is back",
                    "points": args.points,
                    "send_now": True,
                },
            )
            campaign_id = c.id
        env = {
            **env,
            "LOYALWALLET_WORKER_THREADS": str(args.threads),
            "LOYALWALLET_WORKER_POLL_SECONDS": "0.05",
        }
        started = time.perf_counter()
        for _ in range(args.workers):
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "loyalwallet.cli", "worker"],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )

        def counts() -> tuple[int, int, int, bool]:
            with db.read() as session:
                messaged = session.scalar(
                    select(func.count()).where(
                        OutboxMessage.topic == "google.message", OutboxMessage.status != "pending"
                    )
                )
                # An apple.push row is one token {"token"} or a batch {"tokens": [...]}.
                pushed = sum(
                    len(p.get("tokens") or [p["token"]])
                    for p in session.scalars(
                        select(OutboxMessage.payload).where(
                            OutboxMessage.topic == "apple.push", OutboxMessage.status != "pending"
                        )
                    )
                )
                pending = session.scalar(select(func.count()).where(OutboxMessage.status == "pending"))
                status = session.scalar(select(Campaign.status).where(Campaign.id == campaign_id))
            return int(messaged or 0), pushed, int(pending or 0), status == "sent"

        messages_at = pushes_at = None
        last_report = started
        while True:
            time.sleep(0.5)
            messaged, pushed, pending, sent = counts()
            now = time.perf_counter()
            if messages_at is None and messaged >= args.cards:
                messages_at = now - started
            if pushes_at is None and pushed >= args.cards:
                pushes_at = now - started
            if now - last_report > 15:
                print(
                    f"  {now - started:5.0f} s: {pushed} Apple pushes, {messaged} Google messages, "
                    f"{pending} rows pending",
                    flush=True,
                )
                last_report = now
            if messages_at is not None and pushes_at is not None and pending == 0 and sent:
                all_at = now - started
                break
            if now - started > 7200:
                raise SystemExit("gave up after two hours")
        delivered = sum(
            1 for o in fake.objects.values() for m in o.get("messages", []) if m["header"] == "Autumn menu"
        )
        with db.read() as session:
            dead = session.scalar(select(func.count()).where(OutboxMessage.status == "dead"))
            # Tried more than once: a provider error, or (google.*) the object's row lock
            # held by another worker (Retry after 2 s).
            retried = session.scalar(select(func.count()).where(OutboxMessage.attempts > 1))
            c = session.get(Campaign, campaign_id)
            assert c is not None and c.started_at is not None and c.finished_at is not None
            ours = (c.finished_at - c.started_at).total_seconds()
            topics = dict(
                session.execute(select(OutboxMessage.topic, func.count()).group_by(OutboxMessage.topic)).all()
            )
        push_rate, message_rate = args.cards / pushes_at, args.cards / messages_at
        print(f"outbox rows by topic: {topics}")
        print(f"campaign.start + campaign.deliver (the message on every card, pushes queued): {ours:.1f} s")
        print(
            f"worker ({args.workers} process(es) x {args.threads} threads), all at once: "
            f"{args.cards} Apple pushes in {pushes_at:.1f} s = {push_rate:.0f}/s; "
            f"{args.cards} Google messages in {messages_at:.1f} s = {message_rate:.0f}/s; "
            f"everything (with the Google object patches) in {all_at:.1f} s; "
            f"{delivered} messages at the fake Google; {dead} dead rows, {retried} rows tried more than once"
        )
        print(
            f"ratio worker/raw: Apple {push_rate / raw['apns_one']:.2f} of push one by one, "
            f"{push_rate / raw['apns_many']:.2f} of push_many; Google {message_rate / raw['google']:.2f}"
        )
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


if __name__ == "__main__":
    main()
