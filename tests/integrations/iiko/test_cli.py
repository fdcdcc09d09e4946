"""`loyalwallet iiko connect|status|disconnect`, each run as its own process against the fake."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from sqlalchemy import select

from fakes.iiko import FakeIiko
from integrations.iiko.conftest import LOGIN
from loyalwallet import db
from loyalwallet.config import Settings
from loyalwallet.integrations.iiko.models import IikoConnection
from support import Shop


def run(
    settings: Settings, fake: FakeIiko, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "LOYALWALLET_DATABASE_URL": settings.database_url,
        "LOYALWALLET_DATA_DIR": str(settings.data_dir),
        "LOYALWALLET_IIKO_URL": fake.url,
    }
    env.pop("LOYALWALLET_IIKO_API_LOGIN", None)
    done = subprocess.run(
        [sys.executable, "-m", "loyalwallet.cli", "iiko", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # Rich wraps long lines on stderr: compare words, not line breaks.
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout, " ".join(done.stderr.split()))


def _row(merchant_id: int) -> IikoConnection | None:
    with db.read() as session:
        return session.scalar(select(IikoConnection).where(IikoConnection.merchant_id == merchant_id))


@pytest.mark.slow(seconds=50)
def test_connect_status_disconnect(settings: Settings, shop: Shop, iiko: FakeIiko) -> None:
    m = str(shop.merchant_id)
    out = run(
        settings,
        iiko,
        "connect",
        "--merchant",
        m,
        "--stdin",
        "--card-range",
        "7700000001-7700000500",
        "--tier",
        "Золото=Gold",
        "--json",
        stdin=LOGIN + "\n",
    )
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["organization"] == {"id": iiko.org_id, "name": iiko.org_name}
    assert info["card_range"]["left"] == 500 and info["tiers"] == {"Золото": "Gold"}
    assert info["wallet"]["id"] == iiko.wallet_id
    row = _row(shop.merchant_id)
    assert row is not None and LOGIN.encode() not in row.api_login_sealed  # sealed, not in clear
    assert LOGIN not in out.stdout + out.stderr

    status = run(settings, iiko, "status", "--merchant", m, "--check")
    assert status.returncode == 0, status.stderr
    assert (
        "ok" in status.stdout and iiko.org_name in status.stdout and '"guestCategories"' not in status.stdout
    )
    assert "Золото" in status.stdout  # iiko's real answer: its categories

    gone = run(settings, iiko, "disconnect", "--merchant", m)
    assert gone.returncode == 0 and "disconnected" in gone.stderr
    assert _row(shop.merchant_id) is None
    assert run(settings, iiko, "status", "--merchant", m).returncode == 1


def test_a_wrong_login_stores_nothing(settings: Settings, shop: Shop, iiko: FakeIiko) -> None:
    out = run(
        settings,
        iiko,
        "connect",
        "--merchant",
        str(shop.merchant_id),
        "--stdin",
        "--card-range",
        "1-100",
        stdin="not-a-login\n",
    )
    assert out.returncode == 2
    assert "iiko does not accept this API login" in out.stderr and "nothing was stored" in out.stderr
    assert _row(shop.merchant_id) is None


def test_an_unknown_organisation_lists_the_ones_the_login_has(
    settings: Settings, shop: Shop, iiko: FakeIiko
) -> None:
    out = run(
        settings,
        iiko,
        "connect",
        "--merchant",
        str(shop.merchant_id),
        "--stdin",
        "--card-range",
        "1-100",
        "--organization",
        "11111111-2222-3333-4444-555555555555",
        "--json",
        stdin=LOGIN + "\n",
    )
    assert out.returncode == 2
    doc = json.loads(out.stdout)
    assert doc["code"] == "iiko_organization_unknown" and iiko.org_id in doc["error"]
    assert _row(shop.merchant_id) is None


def test_a_login_with_several_organisations_must_choose(
    settings: Settings, shop: Shop, iiko: FakeIiko
) -> None:
    iiko.add_login(
        LOGIN,
        orgs=[
            {"id": iiko.org_id, "name": "Лесная"},
            {"id": "0f000000-0000-0000-0000-000000000001", "name": "Тверская"},
        ],
    )
    out = run(
        settings,
        iiko,
        "connect",
        "--merchant",
        str(shop.merchant_id),
        "--stdin",
        "--card-range",
        "1-100",
        stdin=LOGIN + "\n",
    )
    assert out.returncode == 2 and "Тверская" in out.stderr and "--organization" in out.stderr
    ok = run(
        settings,
        iiko,
        "connect",
        "--merchant",
        str(shop.merchant_id),
        "--stdin",
        "--card-range",
        "1-100",
        "--organization",
        iiko.org_id,
        stdin=LOGIN + "\n",
    )
    assert ok.returncode == 0, ok.stderr


def test_a_bad_range_or_category_is_refused_before_asking_iiko(
    settings: Settings, shop: Shop, iiko: FakeIiko
) -> None:
    m = str(shop.merchant_id)
    backwards = run(
        settings, iiko, "connect", "--merchant", m, "--stdin", "--card-range", "500-100", stdin=LOGIN + "\n"
    )
    assert backwards.returncode == 2 and "ends before it starts" in backwards.stderr
    unknown = run(
        settings,
        iiko,
        "connect",
        "--merchant",
        m,
        "--stdin",
        "--card-range",
        "1-100",
        "--tier",
        "Платина=VIP",
        stdin=LOGIN + "\n",
    )
    assert unknown.returncode == 2 and "no customer category 'Платина'" in unknown.stderr
    assert _row(shop.merchant_id) is None


def test_status_shows_the_last_error_in_plain_words(settings: Settings, shop: Shop, iiko: FakeIiko) -> None:
    m = str(shop.merchant_id)
    assert (
        run(
            settings, iiko, "connect", "--merchant", m, "--stdin", "--card-range", "1-100", stdin=LOGIN + "\n"
        ).returncode
        == 0
    )
    iiko.logins.clear()  # the dealer revoked the login
    iiko.tokens.clear()
    out = run(settings, iiko, "status", "--merchant", m, "--check", "--json")
    assert out.returncode == 1
    doc = json.loads(out.stdout)
    assert doc["state"] == "error" and "does not accept this API login" in doc["last_error"]
