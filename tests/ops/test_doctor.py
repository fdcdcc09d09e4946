"""`loyalwallet doctor` as an operator runs it: its own process, a real server, the fake
providers (APNs over HTTP/2, SMS.ru, Telegram); exit 1 on a blocker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fakes import smsru
from fakes.apns import FakeApns
from fakes.telegram import TOKEN, FakeTelegram
from loyalwallet.wallet.apple import certs
from support import free_port

pytestmark = pytest.mark.slow(seconds=35)

KEY_ID = "DOCTORKEY1"


def run(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loyalwallet.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def doctor(env: dict[str, str]) -> tuple[int, dict[str, dict[str, Any]]]:
    r = run(env, "doctor", "--json")
    assert r.stdout, r.stderr
    out = json.loads(r.stdout)
    by_key: dict[str, dict[str, Any]] = {}
    for f in out["findings"]:
        by_key.setdefault(f["key"], f)
    return r.returncode, by_key


@pytest.fixture
def installation(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A fresh installation served by `loyalwallet serve`, with every provider configured
    against its fake."""
    sms = smsru.start()
    telegram = FakeTelegram().start()
    team_key = ec.generate_private_key(ec.SECP256R1())
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALWALLET_")}
    port = free_port()
    env.update(
        LOYALWALLET_DATA_DIR=str(tmp_path / "data"),
        LOYALWALLET_DATABASE_URL=f"sqlite:///{tmp_path / 'lw.db'}",
        LOYALWALLET_BASE_URL=f"http://127.0.0.1:{port}",
        LOYALWALLET_SMS_PROVIDER="smsru",
        LOYALWALLET_SMSRU_API_ID=smsru.API_ID,
        LOYALWALLET_SMSRU_BASE_URL=sms.url,
        LOYALWALLET_TELEGRAM_BOT_TOKEN=TOKEN,
        LOYALWALLET_TELEGRAM_API_URL=telegram.url,
        LOYALWALLET_WORKER_HEARTBEAT_SECONDS="0.5",
    )
    assert run(env, "migrate").returncode == 0
    r = run(env, "apple", "dev-cert")
    assert r.returncode == 0, r.stderr
    ptid = r.stderr.split("(")[-1].split(")")[0] if "(" in r.stderr else None
    p8 = tmp_path / "AuthKey.p8"
    p8.write_bytes(
        team_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    r = run(
        env, "apple", "import-push-key", "--p8", str(p8), "--key-id", KEY_ID, "--team-id", certs.DEV_TEAM_ID
    )
    assert r.returncode == 0, r.stderr
    apns = FakeApns(
        tmp_path / "apns",
        team_key=team_key.public_key(),
        key_id=KEY_ID,
        team_id=certs.DEV_TEAM_ID,
        topic=ptid,
    ).start()
    env.update(LOYALWALLET_APNS_URL=apns.url, LOYALWALLET_APNS_CA_FILE=apns.ca_file)
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "loyalwallet.cli", "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
        time.sleep(0.2)
    time.sleep(1.0)  # the embedded worker's first heartbeat
    try:
        yield {"env": env, "apns": apns, "data": tmp_path / "data", "server": server, "sms": sms}
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
        apns.stop()
        telegram.stop()
        sms.stop()


def test_a_configured_installation_has_no_blocker(installation: dict[str, Any]) -> None:
    code, found = doctor(installation["env"])
    assert code == 0, found
    assert found["database"]["level"] == "ok"
    assert "schema at head" in found["database"]["detail"]
    # Plain HTTP on 127.0.0.1 is a warning (development); it answers.
    assert found["base_url_https"]["level"] == "warn"
    assert found["base_url_answers"]["level"] == "ok"
    assert found["secrets"]["level"] == "ok"
    assert found["apple_certificate"]["level"] == "warn"  # the development certificate
    assert found["apns"]["level"] == "ok", found["apns"]
    assert "accepted our credentials" in found["apns"]["detail"]
    assert found["sms"]["level"] == "ok" and "balance 100.50" in found["sms"]["detail"]
    assert found["telegram"]["level"] == "ok" and "@cafe_bot" in found["telegram"]["detail"]
    assert found["worker"]["level"] == "ok", found["worker"]
    assert found["outbox"]["level"] == "ok"
    assert found["disk"]["level"] in ("ok", "warn")
    assert found["backups"]["level"] == "warn"  # none yet
    # The test push reached APNs with our token auth and woke nobody.
    assert installation["apns"].tokens() == ["0" * 64]
    # One screen for a person: every check on its own row, no traceback.
    screen = run(installation["env"], "doctor")
    assert screen.returncode == 0
    assert "Outbox worker" in screen.stdout and "APNs" in screen.stdout
    assert "no blocker" in screen.stderr


def test_blockers_make_doctor_exit_1_and_say_what_to_do(installation: dict[str, Any]) -> None:
    env = installation["env"]
    key = installation["data"] / "secrets" / "pii_key.key"
    key.chmod(0o644)
    bad = {**env, "LOYALWALLET_SMSRU_API_ID": "WRONG-KEY", "LOYALWALLET_TELEGRAM_BOT_TOKEN": "1:wrong"}
    code, found = doctor(bad)
    assert code == 1
    assert found["secrets"]["level"] == "blocker"
    assert "readable by others" in found["secrets"]["detail"] and "chmod 600" in found["secrets"]["fix"]
    assert found["sms"]["level"] == "blocker" and "Неправильный api_id" in found["sms"]["detail"]
    assert found["telegram"]["level"] == "blocker"
    key.chmod(0o600)
    # The server stops answering: its base URL is a blocker.
    installation["server"].terminate()
    installation["server"].wait(timeout=30)
    code, found = doctor(env)
    assert code == 1
    assert found["base_url_answers"]["level"] == "blocker"


def test_a_database_behind_the_code_is_a_blocker(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALWALLET_")}
    env.update(
        LOYALWALLET_DATA_DIR=str(tmp_path / "data"),
        LOYALWALLET_DATABASE_URL=f"sqlite:///{tmp_path / 'new.db'}",
        LOYALWALLET_BASE_URL="http://127.0.0.1:9",
    )
    code, found = doctor(env)
    assert code == 1
    assert found["database"]["level"] == "blocker"
    assert "migrations pending" in found["database"]["detail"]
    assert found["database"]["fix"] == "loyalwallet migrate"
    assert found["worker"]["level"] == "skip"


def test_a_pool_larger_than_the_servers_max_connections_is_a_warning(settings: Any, tmp_path: Path) -> None:
    """Issue 19: processes x pool against the server's own max_connections (read here, so
    the test holds whatever the server is set to)."""
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("the budget is a PostgreSQL check")
    from sqlalchemy import create_engine

    engine = create_engine(settings.database_url)
    with engine.connect() as conn:
        limit = int(conn.exec_driver_sql("SHOW max_connections").scalar_one())
    engine.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALWALLET_")}
    env.update(
        LOYALWALLET_DATA_DIR=str(tmp_path / "data"),
        LOYALWALLET_DATABASE_URL=settings.database_url,
        LOYALWALLET_BASE_URL="http://127.0.0.1:9",
        LOYALWALLET_DB_PROCESSES="4",
        LOYALWALLET_DB_POOL=str(limit * 4 + 40),  # each process alone asks for more than the server has
    )
    _, found = doctor(env)
    assert found["connections"]["level"] == "warn", found["connections"]
    detail = found["connections"]["detail"]
    assert f"max_connections {limit}" in detail and "4 process(es)" in detail
    assert "PgBouncer" in detail and found["connections"]["fix"] == "see docs/scaling.md"
    # A budget that fits: no warning.
    _, found = doctor({**env, "LOYALWALLET_DB_POOL": "8"})
    assert found["connections"]["level"] == "ok", found["connections"]
    assert "1+1 per process fit" in found["connections"]["detail"]


def test_the_doctor_says_whether_autovacuum_is_on(settings: Any, tmp_path: Path) -> None:
    """Autovacuum off (as in some tuned or CI configs) is a warning: tables written all day
    keep their dead rows and grow. Read from the server itself, so the test holds either way."""
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("a PostgreSQL setting")
    from sqlalchemy import create_engine

    engine = create_engine(settings.database_url)
    with engine.connect() as conn:
        on = conn.exec_driver_sql("SHOW autovacuum").scalar_one() == "on"
    engine.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALWALLET_")}
    env.update(
        LOYALWALLET_DATA_DIR=str(tmp_path / "data"),
        LOYALWALLET_DATABASE_URL=settings.database_url,
        LOYALWALLET_BASE_URL="http://127.0.0.1:9",
    )
    _, found = doctor(env)
    assert found["autovacuum"]["level"] == ("ok" if on else "warn"), found["autovacuum"]
    if not on:
        assert "autovacuum = on" in found["autovacuum"]["fix"]
