"""iiko: how soon a card shows iiko's balance after an iiko order, and how fast the
periodic reconciliation reads guests from iiko while staying under a request rate.

Against the local fake iikoCloud (tests/fakes/iiko.py) in this process, on a fresh
database (SQLite in a temporary directory by default; `--database-url` for PostgreSQL).

1. webhook → card pushed: a guest's order closes in iiko; the order webhook is posted to
   our receiver (HTTP, the FastAPI app) and the outbox worker runs until the card's
   `card.changed` row is delivered (the Apple and Google listeners ran). Baseline in the
   same run: a POS purchase on a card of our own bonus programme (POST /api/v1/purchases)
   until its `card.changed` row is delivered. Rounds; min / median / max and the ratio.
2. reconciliation: `--cards` guests linked to iiko customers; one `iiko-reconcile` run
   queues them all (IIKO_SYNC_BATCH = cards) and the worker reads each from iiko under
   LOYALWALLET_IIKO_RATE = `--rate`; the fake answers 429 past `--rate` calls a second
   (iiko's own limit, here set equal), and must never have to. Baseline: the same run
   with the rate unlimited (the cost of our side alone).

Usage: .venv/bin/python bench/iiko.py [--cards 10000] [--rate 200] [--rounds 20]
           [--database-url URL]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the local fakes of outside services live there

from fakes.iiko import FakeIiko, order_event  # noqa: E402


def setup(url: str | None) -> None:
    from loyalwallet import db, wiring
    from loyalwallet.config import Settings, configure, load_settings
    from loyalwallet.migrations import migrate

    data = Path(tempfile.mkdtemp(prefix="lwbench-iiko-"))
    url = url or f"sqlite:///{data / 'bench.db'}"
    s = configure(load_settings(data, url))
    configure(Settings(**{**s.__dict__, "run_worker": False}))
    migrate(url)
    db.init_engine()
    wiring.install()


def stats(values: list[float]) -> str:
    return f"min {min(values):.1f} / median {statistics.median(values):.1f} / max {max(values):.1f}"


def pending(merchant_id: int, after_id: int) -> int:
    from sqlalchemy import func, select

    from loyalwallet import db
    from loyalwallet.outbox.models import OutboxMessage

    with db.read() as session:
        return (
            session.scalar(
                select(func.count()).where(
                    OutboxMessage.merchant_id == merchant_id,
                    OutboxMessage.id > after_id,
                    OutboxMessage.status == "pending",
                )
            )
            or 0
        )


def drain_until_done(merchant_id: int, after_id: int) -> None:
    from loyalwallet.outbox import worker

    while True:
        worker.run_once()
        if not pending(merchant_id, after_id):
            return


def last_row() -> int:
    from sqlalchemy import func, select

    from loyalwallet import db
    from loyalwallet.outbox.models import OutboxMessage

    with db.read() as session:
        return int(session.scalar(select(func.max(OutboxMessage.id))) or 0)


def latency(fake: FakeIiko, rounds: int) -> None:
    from fastapi.testclient import TestClient

    from loyalwallet import db
    from loyalwallet.api.app import create_app
    from loyalwallet.config import get_settings
    from loyalwallet.integrations.iiko import service
    from loyalwallet.merchants.actors import system
    from loyalwallet.merchants.service import create_api_key, create_merchant

    client = TestClient(create_app(get_settings(), run_worker=False))
    with db.transaction() as session:
        merchant = create_merchant(session, "bench iiko")
        key = create_api_key(session, merchant.id, "owner", "owner")[1]
        conn = service.connect(session, merchant.id, "bench-login", card_first=1, card_last=10**6)
        token, merchant_id = conn.webhook_token, merchant.id
        del system
    auth = {"Authorization": f"Bearer {key}"}
    iiko_prog = client.post(
        "/api/v1/programs", headers=auth, json={"kind": "iiko", "name": "i", "rules": {}}
    ).json()
    bonus = {"tiers": [{"name": "B", "min_spend": 0, "cashback_pct": 5}]}
    own = client.post(
        "/api/v1/programs", headers=auth, json={"kind": "bonus", "name": "b", "rules": bonus}
    ).json()
    webhook_ms: list[float] = []
    purchase_ms: list[float] = []
    for i in range(rounds):
        phone = f"+7916{i:07d}"
        card = client.post(
            "/api/v1/cards", headers=auth, json={"program_id": iiko_prog["id"], "phone": phone}
        ).json()
        ours = client.post(
            "/api/v1/cards", headers=auth, json={"program_id": own["id"], "phone": phone}
        ).json()
        drain_until_done(merchant_id, 0)
        guest = fake.by_phone(phone)
        assert guest is not None
        fake.order_closed(guest, 240)
        event = order_event(fake, customer=guest)
        start_row, t0 = last_row(), time.perf_counter()
        r = client.post(
            f"/integrations/iiko/{merchant_id}/webhook", json=[event], headers={"Authorization": token}
        )
        assert r.status_code == 200, r.text
        drain_until_done(merchant_id, start_row)
        webhook_ms.append((time.perf_counter() - t0) * 1000)
        assert client.get(f"/api/v1/cards/{card['code']}", headers=auth).json()["balance"] == 240
        start_row, t0 = last_row(), time.perf_counter()
        r = client.post(
            "/api/v1/purchases",
            headers={**auth, "Idempotency-Key": uuid.uuid4().hex},
            json={"card": ours["code"], "amount": 35000},
        )
        assert r.status_code == 201, r.text
        drain_until_done(merchant_id, start_row)
        purchase_ms.append((time.perf_counter() - t0) * 1000)
    print(f"webhook → card.changed delivered, ms:  {stats(webhook_ms)}  ({rounds} rounds)")
    print(f"baseline POS purchase → delivered, ms: {stats(purchase_ms)}")
    print(
        f"ratio (median webhook / median purchase): {statistics.median(webhook_ms) / statistics.median(purchase_ms):.2f}"
    )


def seed_guests(fake: FakeIiko, n: int) -> int:
    from sqlalchemy import insert

    from loyalwallet import crypto, db
    from loyalwallet.cards.models import Card
    from loyalwallet.db import utcnow
    from loyalwallet.integrations.iiko import service
    from loyalwallet.integrations.iiko.models import IikoGuest
    from loyalwallet.merchants.actors import system
    from loyalwallet.merchants.service import create_merchant
    from loyalwallet.programs.service import create_program

    now = utcnow()
    with db.transaction() as session:
        merchant = create_merchant(session, "bench reconcile")
        service.connect(session, merchant.id, "bench-login", card_first=1, card_last=10**6)
        program = create_program(session, system(merchant.id), "iiko", "iiko", {})
        merchant_id, program_id = merchant.id, program.id
    guests = [fake.add_customer(f"+7925{i:07d}", card=str(10**7 + i), balance=i % 500) for i in range(n)]
    with db.transaction() as session:
        for start in range(0, n, 1000):
            chunk = guests[start : start + 1000]
            rows = [
                {"merchant_id": merchant_id, "program_id": program_id, "code": g.cards[0]["number"],
                 "serial": crypto.token(16), "auth_token": crypto.token(24), "public_token": crypto.token(24),
                 "status": "active", "balance": 0, "stamps": 0, "tier": "Guest", "spend": 0, "visits": 0,
                 "version": 1, "pass_updated_at": now, "created_at": now, "updated_at": now}
                for g in chunk
            ]  # fmt: skip
            ids = session.scalars(insert(Card).returning(Card.id), rows).all()
            session.execute(
                insert(IikoGuest),
                [
                    {
                        "card_id": cid,
                        "merchant_id": merchant_id,
                        "customer_id": g.id,
                        "card_number": g.cards[0]["number"],
                    }
                    for cid, g in zip(ids, chunk, strict=True)
                ],
            )
    return merchant_id


SLICE = 1000  # cards per slice of a pass: the pass's min / median / max come from them


def reconcile_once(fake: FakeIiko, merchant_id: int, rate: str) -> tuple[float, int, int, list[float]]:
    """One reconciliation pass of every guest: cards/s over the pass, 429 answers, cards,
    and cards/s of each slice of SLICE cards (customer/info calls answered by the fake)."""
    from loyalwallet.integrations.iiko import handlers
    from loyalwallet.outbox import worker

    os.environ["LOYALWALLET_IIKO_RATE"] = rate
    fake.calls.clear()
    start_row, t0 = last_row(), time.perf_counter()
    queued = handlers.reconcile()
    slices: list[float] = []
    mark, mark_at = 0, t0
    while True:
        worker.run_once()
        read = sum(1 for c in fake.calls if c.status == 200 and c.path.endswith("/customer/info"))
        now = time.perf_counter()
        crossed = (read - mark) // SLICE
        if crossed:  # slices finished in this worker round share its time evenly
            slices += [SLICE * crossed / max(now - mark_at, 1e-9)] * crossed
            mark, mark_at = mark + crossed * SLICE, now
        if read >= queued or not pending(merchant_id, start_row):
            break
    drain_until_done(merchant_id, start_row)  # the last chunk's transaction and card.changed
    seconds = time.perf_counter() - t0
    refused = sum(1 for c in fake.calls if c.status == 429)
    return queued / seconds, refused, queued, slices


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cards", type=int, default=10_000)
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--database-url")
    args = ap.parse_args()
    fake = FakeIiko().start()
    fake.add_login("bench-login")
    os.environ["LOYALWALLET_IIKO_URL"] = fake.url
    os.environ["LOYALWALLET_IIKO_RATE"] = "100000"
    os.environ["LOYALWALLET_IIKO_SYNC_BATCH"] = str(args.cards)
    setup(args.database_url)
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)
    latency(fake, args.rounds)
    merchant_id = seed_guests(fake, args.cards)
    fake.rate_limit = None
    free, _, n, free_slices = reconcile_once(fake, merchant_id, "100000")
    fake.rate_limit = args.rate
    paced, refused, _, paced_slices = reconcile_once(fake, merchant_id, str(args.rate))
    print(f"reconciliation of {n} guests, unlimited rate (our side alone): {free:.0f} cards/s")
    print(f"  per {SLICE} cards, cards/s: {stats(free_slices)}")
    print(
        f"reconciliation under {args.rate:.0f} requests/s (iiko refuses past that): {paced:.0f} cards/s, "
        f"{refused} answers 429; {paced / args.rate:.2f} of the rate, {paced / free:.2f} of unlimited"
    )
    print(f"  per {SLICE} cards, cards/s: {stats(paced_slices)}")
    fake.stop()


if __name__ == "__main__":
    main()
