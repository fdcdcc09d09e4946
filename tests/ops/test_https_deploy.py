"""The deploy as an operator installs it: Caddy (Debian's package, deploy/Caddyfile, its
internal CA instead of Let's Encrypt) in front of `loyalwallet serve` and a separate
`loyalwallet worker` on PostgreSQL, every request from the guest's side through HTTPS.

Walked here: a purchase (and its replay), the pass download whose webServiceURL is the
https base URL, the PassKit web service (register, the serials that changed, the updated
pass after the worker woke the device through the fake APNs), and the guest's own address
reaching the app through X-Forwarded-For (recorded with a failed staff login).
"""

from __future__ import annotations

import json
import os
import re
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import create_engine, text

from caddy_support import DEPLOY, Caddy, caddyfile_for_test, have_caddy, start_caddy
from fakes.apns import FakeApns
from fakes.wallet_device import Device, open_pkpass
from loyalwallet.config import normalise_database_url
from loyalwallet.wallet.apple import certs
from support import free_port

PG_URL = os.environ.get("LOYALWALLET_TEST_DATABASE_URL")
GUEST_ADDRESS = "127.0.0.5"  # the guest's own address (any 127/8 address is local)
KEY_ID = "CADDYKEY01"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not have_caddy(), reason="Debian's caddy package is not installed"),
    pytest.mark.skipif(not PG_URL, reason="runs on PostgreSQL (LOYALWALLET_TEST_DATABASE_URL)"),
]


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loyalwallet.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def database() -> Iterator[str]:
    assert PG_URL
    name = f"lwcaddy_{uuid.uuid4().hex[:8]}"
    admin = create_engine(normalise_database_url(PG_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{PG_URL.rpartition('/')[0]}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def installation(tmp_path: Path, database: str) -> Iterator[dict[str, Any]]:
    """migrate, merchant create, the Apple certificate and APNs key; then serve (no
    embedded worker, as in deploy/loyalwallet.service), worker and Caddy."""
    app_port, https_port, http_port = free_port(), free_port(), free_port()
    base_url = f"https://localhost:{https_port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALWALLET_")}
    env.update(
        LOYALWALLET_DATA_DIR=str(tmp_path / "data"),
        LOYALWALLET_DATABASE_URL=database,
        LOYALWALLET_BASE_URL=base_url,
        LOYALWALLET_RUN_WORKER="0",
    )
    # Caddy first: it makes its CA and certificate while the installation is set up.
    caddy = start_caddy(
        tmp_path / "caddy",
        caddyfile_for_test(
            DEPLOY / "Caddyfile",
            site=f"localhost:{https_port}",
            upstreams={"127.0.0.1:8000": f"127.0.0.1:{app_port}"},
            http_port=http_port,
            https_port=https_port,
        ),
    )
    try:
        yield from _installation(tmp_path, env, caddy, app_port)
    finally:
        caddy.stop()


def _installation(
    tmp_path: Path, env: dict[str, str], caddy: Caddy, app_port: int
) -> Iterator[dict[str, Any]]:
    base_url = env["LOYALWALLET_BASE_URL"]
    assert (r := _cli(env, "migrate")).returncode == 0, r.stderr
    team_key = ec.generate_private_key(ec.SECP256R1())
    p8 = tmp_path / "AuthKey.p8"
    p8.write_bytes(
        team_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    # Three independent set-up commands at once (each is a Python start on a busy machine).
    with ThreadPoolExecutor(3) as pool:
        made_f = pool.submit(_cli, env, "merchant", "create", "--name", "Кофейня у моста", "--json")
        cert_f = pool.submit(_cli, env, "apple", "dev-cert")
        key_f = pool.submit(
            _cli,
            env,
            *(
                "apple",
                "import-push-key",
                "--p8",
                str(p8),
                "--key-id",
                KEY_ID,
                "--team-id",
                certs.DEV_TEAM_ID,
            ),
        )
        made, cert, pushed = made_f.result(), cert_f.result(), key_f.result()
    assert made.returncode == 0, made.stderr
    api_key = json.loads(made.stdout)["api_key"]
    assert cert.returncode == 0, cert.stderr
    ptid = re.search(r"\((pass\.[^)]+)\)", cert.stdout + cert.stderr)
    assert ptid, cert.stdout
    assert pushed.returncode == 0, pushed.stderr
    apns = FakeApns(
        tmp_path / "apns",
        team_key=team_key.public_key(),
        key_id=KEY_ID,
        team_id=certs.DEV_TEAM_ID,
        topic=ptid.group(1),
    ).start()
    env.update(LOYALWALLET_APNS_URL=apns.url, LOYALWALLET_APNS_CA_FILE=apns.ca_file)

    logs = {name: (tmp_path / f"{name}.log").open("w") for name in ("serve", "worker")}
    server = subprocess.Popen(
        [sys.executable, "-m", "loyalwallet.cli", "serve", "--host", "127.0.0.1", "--port", str(app_port)],
        env=env,
        stdout=logs["serve"],
        stderr=subprocess.STDOUT,
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "loyalwallet.cli", "worker"],
        env=env,
        stdout=logs["worker"],
        stderr=subprocess.STDOUT,
    )
    try:
        root_ca = caddy.wait_for_ca()
        transport = httpx.HTTPTransport(
            verify=ssl.create_default_context(cafile=str(root_ca)), local_address=GUEST_ADDRESS
        )
        with httpx.Client(base_url=base_url, transport=transport, timeout=60) as guest:
            deadline = time.monotonic() + 90
            while True:  # the server is up and Caddy has its certificate
                try:
                    if guest.get("/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert server.poll() is None, (tmp_path / "serve.log").read_text()
                assert caddy.process.poll() is None, caddy.log.read_text()
                assert time.monotonic() < deadline, caddy.log.read_text()[-3000:]
                time.sleep(0.2)
            yield {
                "guest": guest,
                "auth": {"Authorization": f"Bearer {api_key}"},
                "apns": apns,
                "base_url": base_url,
                "database": env["LOYALWALLET_DATABASE_URL"],
                "ca": str(root_ca),
            }
    finally:
        for proc in (server, worker):  # both stop at once
            proc.terminate()
        for proc in (server, worker):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        for f in logs.values():
            f.close()
        apns.stop()


def test_a_guest_walks_the_https_deploy_end_to_end(installation: dict[str, Any]) -> None:
    guest: httpx.Client = installation["guest"]
    auth = installation["auth"]
    base_url = installation["base_url"]
    assert guest.get("/healthz").url.scheme == "https"

    # The till: a programme, a card, a purchase and its replay, all through Caddy.
    program = guest.post(
        "/api/v1/programs",
        headers=auth,
        json={
            "kind": "bonus",
            "name": "Бонусы",
            "rules": {"tiers": [{"name": "B", "min_spend": 0, "cashback_pct": 5}]},
        },
    )
    assert program.status_code == 201, program.text
    card = guest.post(
        "/api/v1/cards", headers=auth, json={"program_id": program.json()["id"], "phone": "+79165550101"}
    )
    assert card.status_code == 201, card.text
    code = card.json()["code"]
    key = uuid.uuid4().hex
    bought = guest.post(
        "/api/v1/purchases", headers={**auth, "Idempotency-Key": key}, json={"card": code, "amount": 40000}
    )
    assert bought.status_code == 201, bought.text
    again = guest.post(
        "/api/v1/purchases", headers={**auth, "Idempotency-Key": key}, json={"card": code, "amount": 40000}
    )
    assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true"
    assert again.json()["id"] == bought.json()["id"]

    # The pass: downloaded over HTTPS, signed, pointing its device at the https service.
    pass_url = card.json()["apple_pass_url"]
    assert pass_url.startswith(base_url + "/"), pass_url
    r = guest.get(pass_url)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/vnd.apple.pkpass"
    pj = open_pkpass(r.content).pass_json
    assert pj["webServiceURL"] == f"{base_url}/wallet/apple"
    ptid, serial, token = pj["passTypeIdentifier"], pj["serialNumber"], pj["authenticationToken"]
    assert pj["storeCard"]["headerFields"][0]["value"] == 20  # 5 % of 400.00 ₽ in points

    # The PassKit web service through Caddy, as an iPhone walks it.
    device = Device(guest)
    assert device.register(ptid, serial, token).status_code == 201
    first = device.changed(ptid, tag=None)
    assert first.status_code == 200 and first.json()["serialNumbers"] == [serial]
    second = guest.post(
        "/api/v1/purchases",
        headers={**auth, "Idempotency-Key": uuid.uuid4().hex},
        json={"card": code, "amount": 20000},
    )
    assert second.status_code == 201, second.text
    apns: FakeApns = installation["apns"]
    deadline = time.monotonic() + 60  # the separate worker wakes the device through APNs
    while device.push_token not in apns.tokens():
        assert time.monotonic() < deadline, "the worker never pushed the card's change"
        time.sleep(0.1)
    changed = device.changed(ptid)
    assert changed.status_code == 200 and changed.json()["serialNumbers"] == [serial]
    fresh = device.fetch(ptid, serial, token)
    assert fresh.status_code == 200, fresh.text
    updated = open_pkpass(fresh.content).pass_json
    assert updated["storeCard"]["headerFields"][0]["value"] == 30
    assert updated["webServiceURL"] == f"{base_url}/wallet/apple"

    # The guest's address: Caddy passes it as X-Forwarded-For, the app trusts Caddy
    # (127.0.0.1) and records the guest's own address; a forged header from the guest
    # is not believed.
    form = guest.get("/login")
    assert form.status_code == 200
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf, form.text[:500]
    login = f"nobody-{uuid.uuid4().hex[:6]}"
    refused = guest.post(
        "/login",
        data={"login": login, "password": "wrong", "csrf": csrf.group(1)},
        headers={"X-Forwarded-For": "203.0.113.9"},
    )
    assert refused.status_code == 401, refused.text[:500]
    engine = create_engine(normalise_database_url(installation["database"]))
    with engine.connect() as conn:
        seen = (
            conn.execute(text("SELECT ip FROM login_attempts WHERE login = :l"), {"l": login}).scalars().all()
        )
    engine.dispose()
    assert seen == [GUEST_ADDRESS]
