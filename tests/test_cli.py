"""The command line of CONTRACT.md, run as a real process against the test database."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from sqlalchemy import update

from loyalwallet import db
from loyalwallet.cards.models import Card
from loyalwallet.config import Settings
from staff_support import StaffLogin, login
from support import Shop


def run(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "LOYALWALLET_DATABASE_URL": settings.database_url,
        "LOYALWALLET_DATA_DIR": str(settings.data_dir),
    }
    return subprocess.run(
        [sys.executable, "-m", "loyalwallet.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_merchant_create_json_gives_a_working_owner_key(settings: Settings, shop: Shop) -> None:
    out = run(
        settings,
        "merchant",
        "create",
        "--name",
        "Кофе & Ко",
        "--currency",
        "RUB",
        "--timezone",
        "Europe/Moscow",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert set(data) == {"merchant_id", "api_key"}
    r = shop.client.post(
        "/api/v1/programs",
        json={"kind": "stamp", "name": "Stamps", "rules": {"stamps_required": 6}},
        headers={"Authorization": f"Bearer {data['api_key']}"},
    )
    assert r.status_code == 201
    me = shop.client.get("/api/v1/merchant", headers={"Authorization": f"Bearer {data['api_key']}"}).json()
    assert me["id"] == data["merchant_id"] and me["role"] == "owner"


def test_merchant_create_with_the_owners_admin_login(settings: Settings, shop: Shop) -> None:
    out = run(
        settings, "merchant", "create", "--name", "Салон", "--owner-login", "Owner@Salon.Test", "--json"
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["owner_login"] == "owner@salon.test" and len(data["owner_password"]) >= 12
    who = StaffLogin(data["owner_login"], data["owner_password"], "owner", 0)
    client = login(shop.client.app, who)
    assert client.get("/admin/staff").status_code == 200


def test_merchant_create_refuses_a_bad_time_zone(settings: Settings) -> None:
    out = run(settings, "merchant", "create", "--name", "X", "--timezone", "Mars/Olympus", "--json")
    assert out.returncode != 0 and "time zone" in out.stderr


@pytest.mark.slow(seconds=40)
def test_check_ledger_finds_a_tampered_card(settings: Settings, shop: Shop) -> None:
    code = shop.card(
        shop.program(
            "bonus", {"tiers": [{"name": "A", "min_spend": 0, "cashback_pct": 5}], "welcome_points": 10}
        )
    )["code"]
    assert run(settings, "check-ledger").returncode == 0
    with db.transaction() as session:
        session.execute(
            update(Card)
            .where(Card.code == code, Card.merchant_id == shop.merchant_id)
            .values(balance=Card.balance + 5)
        )
    try:
        out = run(settings, "check-ledger")
        assert out.returncode == 1
        assert code in out.stdout and "balance 15 != entries 10" in out.stdout
    finally:
        with db.transaction() as session:
            session.execute(
                update(Card)
                .where(Card.code == code, Card.merchant_id == shop.merchant_id)
                .values(balance=Card.balance - 5)
            )
    assert run(settings, "check-ledger").returncode == 0


def test_migrate_is_idempotent(settings: Settings) -> None:
    out = run(settings, "migrate")
    assert out.returncode == 0, out.stderr
