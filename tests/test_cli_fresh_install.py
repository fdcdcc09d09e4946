"""Every `loyalwallet` command, each as its own process, on a database nobody used before.

The database is made empty for this test (SQLite, or PostgreSQL when
LOYALWALLET_TEST_DATABASE_URL is set), so no model was imported by anyone else when a
command first touches a table: the crash of `apple import-cert` on a fresh install
(a foreign key into `merchants`, a table whose model was not loaded) would show here.
Each command runs its happy path and one bad input; a bad input ends with a message and
a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from sqlalchemy import create_engine, select, text, update
from sqlalchemy.orm import Session

from loyalwallet.cards.models import Card
from loyalwallet.config import normalise_database_url
from loyalwallet.merchants.actors import system
from loyalwallet.merchants.models import Staff
from loyalwallet.merchants.passwords import verify_password
from loyalwallet.programs.service import create_program
from loyalwallet.wallet.apple import certs
from loyalwallet.wallet.google.keys import development_key_file

PG_URL = os.environ.get("LOYALWALLET_TEST_DATABASE_URL")


@pytest.fixture
def fresh_url(tmp_path: Path) -> Iterator[str]:
    """An empty database: no table, no row."""
    if not PG_URL:
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    name = f"lwfresh_{uuid.uuid4().hex[:10]}"
    admin = create_engine(normalise_database_url(PG_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    base = normalise_database_url(PG_URL).rpartition("/")[0]
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class Cli:
    def __init__(self, url: str, data_dir: Path) -> None:
        self.env = {
            **os.environ,
            "LOYALWALLET_DATABASE_URL": url,
            "LOYALWALLET_DATA_DIR": str(data_dir),
            "LOYALWALLET_BASE_URL": "https://cafe.example",
            "COLUMNS": "200",
        }

    def __call__(
        self, *args: str, ok: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(
            [sys.executable, "-m", "loyalwallet.cli", *args],
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=180,
        )
        said = f"loyalwallet {' '.join(args)} -> {out.returncode}\n{out.stdout}\n{out.stderr}"
        assert "Traceback" not in out.stderr, said
        assert (out.returncode == 0) == ok, said
        return out


def _p12(identity: certs.PassIdentity, password: bytes) -> bytes:
    return pkcs12.serialize_key_and_certificates(
        b"Pass Type ID",
        identity.key,
        identity.cert,
        [identity.wwdr],
        serialization.BestAvailableEncryption(password),
    )


@pytest.mark.slow(seconds=200)
def test_every_command_as_its_own_process_on_a_fresh_database(fresh_url: str, tmp_path: Path) -> None:
    run = Cli(fresh_url, tmp_path)

    # Before anything: a command that needs tables says what to do.
    early = run("apple", "status", ok=False)
    assert "loyalwallet migrate" in early.stderr

    # migrate: the schema; twice is fine. An unreachable server: one clear line.
    run("migrate")
    run("migrate")
    unreachable = Cli("postgresql://nobody@127.0.0.1:1/none", tmp_path)
    assert "database error" in unreachable("migrate", ok=False).stderr

    # merchant create (with the owner's admin login); a bad time zone stores nothing.
    bad = run("merchant", "create", "--name", "X", "--timezone", "Mars/Olympus", "--json", ok=False)
    assert "time zone" in bad.stderr
    made = json.loads(
        run("merchant", "create", "--name", "Кофе Тест", "--owner-login", "owner@cafe.test", "--json").stdout
    )
    merchant_id = made["merchant_id"]

    # apple dev-cert: the development chain, as the demo makes it.
    assert "development" in run("apple", "dev-cert").stderr
    run("apple", "dev-cert", "unexpected-argument", ok=False)

    # apple import-cert, .p12 with its password; a truncated one stores nothing.
    chain = certs.development_chain("pass.test.fresh", "FRESHTEAM1")
    p12 = tmp_path / "pass.p12"
    p12.write_bytes(_p12(chain, b"s3cret"))
    broken = tmp_path / "broken.p12"
    broken.write_bytes(p12.read_bytes()[:300])
    assert (
        "nothing was stored"
        in run("apple", "import-cert", "--p12", str(broken), "--password", "s3cret", ok=False).stderr
    )
    assert "pass.test.fresh" in run("apple", "import-cert", "--p12", str(p12), "--password", "s3cret").stderr

    # apple import-cert, certificate + key + WWDR intermediate (DER, as Apple ships it).
    other = certs.development_chain("pass.test.pem", "PEMTEAM001")
    cert = tmp_path / "pass.pem"
    cert.write_bytes(other.cert.public_bytes(serialization.Encoding.PEM))
    key = tmp_path / "pass.key"
    key.write_text(other.key_pem())
    wwdr = tmp_path / "AppleWWDRCAG4.cer"
    wwdr.write_bytes(other.wwdr.public_bytes(serialization.Encoding.DER))
    wrong_key = tmp_path / "wrong.key"
    wrong_key.write_text(chain.key_pem())
    refused = run(
        "apple", "import-cert", "--cert", str(cert), "--key", str(wrong_key), "--wwdr", str(wwdr), ok=False
    )
    assert "does not belong" in refused.stderr and "nothing was stored" in refused.stderr
    imported = run(
        "apple", "import-cert", "--cert", str(cert), "--key", str(key), "--wwdr", str(wwdr),
        "--merchant", str(merchant_id),
    )  # fmt: skip
    assert "pass.test.pem" in imported.stderr

    # apple import-push-key: an APNs .p8; a file that is no key stores nothing.
    p8 = tmp_path / "AuthKey_KEYID00001.p8"
    p8.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    not_a_key = tmp_path / "notes.p8"
    not_a_key.write_text("hello")
    run(
        "apple",
        "import-push-key",
        "--p8",
        str(not_a_key),
        "--key-id",
        "KEYID00001",
        "--team-id",
        "FRESHTEAM1",
        ok=False,
    )
    run("apple", "import-push-key", "--p8", str(p8), "--key-id", "KEYID00001", "--team-id", "FRESHTEAM1")

    # apple status: the installation's certificate, and the merchant's own.
    status = json.loads(run("apple", "status", "--json").stdout)
    assert status["pass_type_id"] == "pass.test.fresh"
    assert json.loads(run("apple", "status", "--merchant", str(merchant_id), "--json").stdout)[
        "pass_type_id"
    ] == ("pass.test.pem")
    run("apple", "status", "--merchant", "first", ok=False)

    # google import-key / status / remove.
    google_key = tmp_path / "key.json"
    google_key.write_text(development_key_file("fresh-project"))
    garbage = tmp_path / "garbage.json"
    garbage.write_text("not json at all")
    assert (
        "nothing was stored"
        in run("google", "import-key", str(garbage), "--issuer-id", "3388000000012345678", ok=False).stderr
    )
    run("google", "import-key", str(google_key), "--issuer-id", "3388000000012345678")
    google = json.loads(run("google", "status", "--json").stdout)
    assert google["configured"] and google["issuers"][0]["issuer_id"] == "3388000000012345678"
    run("google", "status", "--merchant", "first", ok=False)
    run("google", "remove", "--merchant", "first", ok=False)
    assert "removed 1" in run("google", "remove").stderr
    assert not json.loads(run("google", "status", "--json").stdout)["configured"]

    # import customers: a programme made as the admin would; a file without phones is refused.
    engine = create_engine(normalise_database_url(fresh_url))
    with Session(engine) as session, session.begin():
        program_id = create_program(
            session,
            system(merchant_id),
            "bonus",
            "Бонусы",
            {"tiers": [{"name": "Base", "min_spend": 0, "cashback_pct": 5}], "welcome_points": 0},
        ).id
    no_phones = tmp_path / "names.csv"
    no_phones.write_text("name,balance\nАнна,10\n", encoding="utf-8")
    assert (
        "phone"
        in run("import", "customers", str(no_phones), "--program", str(program_id), "--yes", ok=False).stderr
    )
    guests = tmp_path / "guests.csv"
    guests.write_text(
        "phone,name,balance\n+79161234567,Анна Петрова,120\n+79161234568,Борис,0\n", encoding="utf-8"
    )
    assert (
        "imported 2 guests"
        in run("import", "customers", str(guests), "--program", str(program_id), "--yes").stderr
    )

    # search reindex.
    assert "2 guests" in run("search", "reindex").stderr
    run("search", "reindex", "--merchant", "first", ok=False)

    # check-ledger: consistent; a card whose cached balance was changed by hand is named.
    run("check-ledger")
    with Session(engine) as session, session.begin():
        code = session.scalars(select(Card.code).where(Card.balance == 120)).one()
        session.execute(update(Card).where(Card.code == code).values(balance=121))
    assert code in run("check-ledger", ok=False).stdout
    with Session(engine) as session, session.begin():
        session.execute(update(Card).where(Card.code == code).values(balance=120))
    run("check-ledger")

    # staff reset-password: a generated one (printed once), or one from standard input.
    assert "no staff login" in run("staff", "reset-password", "nobody@cafe.test", ok=False).stderr
    assert (
        "8 characters"
        in run("staff", "reset-password", "owner@cafe.test", "--stdin", stdin="short\n", ok=False).stderr
    )
    printed = run("staff", "reset-password", "Owner@Cafe.Test").stdout.strip()
    assert len(printed) >= 12 and printed not in ("", made["owner_password"])
    with Session(engine) as session:
        hashed = session.scalars(select(Staff.password_hash).where(Staff.login == "owner@cafe.test")).one()
    assert verify_password(hashed, printed)
    run("staff", "reset-password", "owner@cafe.test", "--stdin", stdin="correct horse battery\n")
    with Session(engine) as session:
        hashed = session.scalars(select(Staff.password_hash).where(Staff.login == "owner@cafe.test")).one()
    assert verify_password(hashed, "correct horse battery") and not verify_password(hashed, printed)
    engine.dispose()

    # worker: starts, and stops on SIGTERM (as systemd stops it) with exit code 0.
    run("worker", "--no-such-option", ok=False)
    worker = subprocess.Popen(
        [sys.executable, "-m", "loyalwallet.cli", "worker"],
        env=run.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stderr is not None
        seen = ""
        while "outbox worker started" not in seen:
            line = worker.stderr.readline()
            assert line, f"the worker ended before it started: {seen}"
            seen += line
        worker.send_signal(signal.SIGTERM)
        rest = worker.communicate(timeout=60)[1]
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, seen + rest
    assert "outbox worker stopped" in rest and "Traceback" not in seen + rest
