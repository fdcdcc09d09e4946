"""Erasing a guest leaves their personal data nowhere: not in an old Idempotency-Key
answer, an outbox row, a webhook delivery, the audit log, nor the SQLite file and its WAL
(or a pg_dump of the PostgreSQL database)."""

from __future__ import annotations

import datetime as dt
import subprocess
from typing import Any

from sqlalchemy import func, select

from loyalwallet import db
from loyalwallet.checkout import idempotency
from loyalwallet.checkout.models import IdempotencyRecord
from support import Shop

NAME = "Zorgulina Quettabyeva"
EMAIL = "zorgulina.q@example.org"
BIRTHDAY = "1987-03-14"


def _database_bytes(settings: Any) -> bytes:
    if settings.is_sqlite:
        path = settings.database_url.split("///", 1)[1]
        out = b""
        for suffix in ("", "-wal"):
            try:
                with open(path + suffix, "rb") as fh:
                    out += fh.read()
            except FileNotFoundError:
                pass
        return out
    url = settings.database_url.replace("postgresql+psycopg://", "postgresql://")
    return subprocess.run(["pg_dump", "--data-only", url], check=True, capture_output=True).stdout


def _counts(blob: bytes, phone: str) -> dict[str, int]:
    needles = {
        "name": NAME,
        "phone": phone,
        "phone_digits": phone.lstrip("+"),
        "email": EMAIL,
        "birthday": BIRTHDAY,
    }
    return {k: blob.count(v.encode()) for k, v in needles.items()}


def test_erase_leaves_no_personal_data(shop: Shop, settings: Any) -> None:
    phone = "+7916" + str(dt.datetime.now().microsecond).zfill(7)[:7]
    pid = shop.program()
    r = shop.post(
        "/api/v1/cards",
        {"program_id": pid, "phone": phone, "name": NAME, "email": EMAIL, "birthday": BIRTHDAY},
        role="cashier",
    )
    assert r.status_code == 201, r.text
    code = r.json()["code"]
    shop.post("/api/v1/webhooks", {"url": "http://127.0.0.1:9/hook", "events": ["*"]})
    first = shop.post(
        "/api/v1/purchases",
        {"card": code, "amount": 50_000},
        role="cashier",
        headers={"Idempotency-Key": "erase-1"},
    )
    assert first.status_code == 201, first.text
    assert first.json()["card"]["customer"]["name"] == NAME
    shop.post("/api/v1/customers/export", {"phone": phone}, role="manager")
    shop.get("/api/v1/customers/export", params={"phone": phone}, role="manager")

    r = shop.post("/api/v1/customers/erase", {"phone": phone, "reason": f"asked by {NAME}, {EMAIL}"})
    assert r.status_code == 200, r.text

    replay = shop.post(
        "/api/v1/purchases",
        {"card": code, "amount": 50_000},
        role="cashier",
        headers={"Idempotency-Key": "erase-1"},
    )
    assert replay.status_code == 201
    assert replay.json()["id"] == first.json()["id"]
    assert replay.json()["card"]["customer"]["name"] is None

    counts = _counts(_database_bytes(settings), phone)
    print("erase grep counts:", counts)
    assert counts == dict.fromkeys(counts, 0)


def test_idempotency_records_expire_and_are_purged(shop: Shop) -> None:
    pid = shop.program()
    code = shop.card(pid)["code"]
    shop.buy(code, 10_000, key="expiring-1")
    with db.read() as session:
        record = session.scalars(
            select(IdempotencyRecord).where(
                IdempotencyRecord.key == "expiring-1", IdempotencyRecord.merchant_id == shop.merchant_id
            )
        ).one()
    assert record.expires_at is not None
    assert dt.timedelta(hours=71) < record.expires_at - record.created_at <= dt.timedelta(hours=72)
    assert idempotency.purge_expired(now=record.expires_at + dt.timedelta(seconds=1)) >= 1
    with db.read() as session:
        left = session.scalar(
            select(func.count()).where(
                IdempotencyRecord.key == "expiring-1", IdempotencyRecord.merchant_id == shop.merchant_id
            )
        )
    assert left == 0


def test_the_expiry_job_is_wired() -> None:
    from loyalwallet import wiring

    assert any(
        p.name == "idempotency-expiry"
        and isinstance(p.run, wiring.Ref)
        and p.run.resolve() is idempotency.purge_expired
        for p in wiring.PERIODIC
    )
