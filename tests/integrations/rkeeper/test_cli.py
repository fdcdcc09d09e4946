"""`loyalwallet rkeeper connect|status|disconnect`, each run as its own process; the
address it prints is the one a fake r_keeper then uses."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from sqlalchemy import select

from fakes.rkeeper import FakeRkeeper
from loyalwallet import db
from loyalwallet.config import Settings
from loyalwallet.integrations.rkeeper.models import RkeeperConnection
from support import Shop

RULES = {"tiers": [{"name": "Base", "min_spend": 0, "cashback_pct": 5}], "max_redeem_pct": 50}


def run(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "LOYALWALLET_DATABASE_URL": settings.database_url,
        "LOYALWALLET_DATA_DIR": str(settings.data_dir),
    }
    done = subprocess.run(
        [sys.executable, "-m", "loyalwallet.cli", "rkeeper", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout, " ".join(done.stderr.split()))


@pytest.mark.slow(seconds=40)
def test_connect_prints_the_ini_lines_status_and_disconnect(settings: Settings, shop: Shop) -> None:
    m = str(shop.merchant_id)
    program = shop.program("bonus", RULES)
    out = run(
        settings, "connect", "--merchant", m, "--program", str(program), "--discount", "Base=4", "--json"
    )
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["tiers"] == {"Base": {"discount": 4}}
    ini = info["ini"]
    address = next(line for line in ini.splitlines() if line.startswith("Address="))[len("Address=") :]
    assert address.startswith("http://testserver/integrations/rkeeper/")
    assert "GetCardInfoEx=getcardinfoex" in ini and "TransactionsEx=transactionsex" in ini
    with db.read() as session:
        row = session.scalar(
            select(RkeeperConnection).where(RkeeperConnection.merchant_id == shop.merchant_id)
        )
        assert row is not None and address.rsplit("/", 1)[-1].encode() not in row.secret_sealed  # sealed

    till = FakeRkeeper(shop.client, address.removeprefix("http://testserver"))
    card = shop.card(program)
    answer = till.card_info(card["code"])
    assert answer.result == 0 and answer.int("Discount") == 4
    assert till.invalid == []

    status = run(settings, "status", "--merchant", m, "--json")
    assert status.returncode == 0, status.stderr
    shown = json.loads(status.stdout)
    assert shown["connected"] and "address_path" not in shown and shown["last_call_at"]

    rotated = run(settings, "connect", "--merchant", m, "--program", str(program), "--rotate", "--json")
    assert rotated.returncode == 0, rotated.stderr
    assert json.loads(rotated.stdout)["tiers"] == {"Base": {"discount": 4}}  # kept
    assert till.card_info(card["code"]).attrs["ErrorCode"] == "unauthorized"  # the old address is dead

    assert run(settings, "disconnect", "--merchant", m).returncode == 0
    assert run(settings, "status", "--merchant", m, "--json").returncode == 1


def test_a_bad_tier_or_programme_stores_nothing(settings: Settings, shop: Shop) -> None:
    m = str(shop.merchant_id)
    program = shop.program("bonus", RULES)
    out = run(settings, "connect", "--merchant", m, "--program", str(program), "--discount", "Platinum=4")
    assert out.returncode == 2 and "no tier 'Platinum'" in out.stderr and "nothing was stored" in out.stderr
    out = run(settings, "connect", "--merchant", m, "--program", "999999")
    assert out.returncode == 2
    out = run(settings, "connect", "--merchant", m, "--program", str(program), "--bonus", "Base=x")
    assert out.returncode == 2 and "TIER=NUMBER" in out.stderr
    with db.read() as session:
        assert (
            session.scalar(select(RkeeperConnection).where(RkeeperConnection.merchant_id == shop.merchant_id))
            is None
        )
