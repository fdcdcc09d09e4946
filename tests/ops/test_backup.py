"""`loyalwallet backup` / `restore` as an operator runs them: a live server under purchase
load is backed up, the archive restored into a new database and data dir, and the
restored installation is consistent, holds every purchase acknowledged before the backup
started, and reads its guests' encrypted data (the secrets came along)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from loyalwallet.config import normalise_database_url
from loyalwallet.ops.backup import BackupError, decrypt, encrypt
from support import free_port

PG_URL = os.environ.get("LOYALWALLET_TEST_DATABASE_URL")


def test_the_archive_is_refused_with_a_wrong_passphrase_or_when_changed_or_cut() -> None:
    data = os.urandom(3 * (1 << 20) + 12345)  # several chunks
    sealed = io.BytesIO()
    encrypt(io.BytesIO(data), sealed, "correct horse")
    blob = sealed.getvalue()
    out = io.BytesIO()
    decrypt(io.BytesIO(blob), out, "correct horse")
    assert out.getvalue() == data
    with pytest.raises(BackupError, match="wrong passphrase"):
        decrypt(io.BytesIO(blob), io.BytesIO(), "wrong")
    changed = bytearray(blob)
    changed[len(blob) // 2] ^= 1
    with pytest.raises(BackupError, match="changed"):
        decrypt(io.BytesIO(bytes(changed)), io.BytesIO(), "correct horse")
    # Cut after a whole chunk: the missing end is noticed (the last chunk is marked).
    first_chunk_end = 10 + 36 + 4 + (1 << 20) + 16
    with pytest.raises(BackupError, match="truncated"):
        decrypt(io.BytesIO(blob[:first_chunk_end]), io.BytesIO(), "correct horse")


def _databases(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(source url, target url): two new empty databases."""
    if not PG_URL:
        yield f"sqlite:///{tmp_path / 'source.db'}", f"sqlite:///{tmp_path / 'restored' / 'lw.db'}"
        return
    names = [f"lwbk_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    admin = create_engine(normalise_database_url(PG_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for n in names:
            conn.execute(text(f'CREATE DATABASE "{n}"'))
    base = PG_URL.rpartition("/")[0]
    try:
        yield f"{base}/{names[0]}", f"{base}/{names[1]}"
    finally:
        with admin.connect() as conn:
            for n in names:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def databases(tmp_path: Path) -> Iterator[tuple[str, str]]:
    yield from _databases(tmp_path)


def _env(data_dir: Path, url: str, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALWALLET_")}
    env.update(
        LOYALWALLET_DATA_DIR=str(data_dir),
        LOYALWALLET_DATABASE_URL=url,
        LOYALWALLET_BASE_URL=f"http://127.0.0.1:{port}",
    )
    return env


def _cli(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loyalwallet.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _serve(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    out = log.open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "loyalwallet.cli", "serve", "--port", str(port)],
        env=env,
        stdout=out,
        stderr=out,
    )
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)


@pytest.mark.slow(seconds=40)
@pytest.mark.xfail(
    not PG_URL,
    reason="known bug (issue 15, open): on SQLite, purchases made while the backup copies the "
    "database fail with 'database is locked' (500); PostgreSQL backups under load are the tested path",
    strict=False,
)
def test_a_backup_of_a_live_server_under_load_restores_into_an_empty_installation(
    tmp_path: Path, databases: tuple[str, str]
) -> None:
    source_url, target_url = databases
    port = free_port()
    env = _env(tmp_path / "source", source_url, port)
    assert _cli(env, "migrate").returncode == 0
    made = _cli(env, "merchant", "create", "--name", "Кофейня", "--json")
    assert made.returncode == 0, made.stderr
    import json

    key = json.loads(made.stdout)["api_key"]
    auth = {"Authorization": f"Bearer {key}"}
    server = _serve(env, port, tmp_path / "source.log")
    base = f"http://127.0.0.1:{port}"
    acked: list[tuple[float, int]] = []  # (when acknowledged, purchase id)
    stop = threading.Event()
    errors: list[str] = []
    try:
        with httpx.Client(base_url=base, headers=auth, timeout=30) as http:
            program = http.post(
                "/api/v1/programs",
                json={
                    "kind": "bonus",
                    "name": "Бонусы",
                    "rules": {"tiers": [{"name": "B", "min_spend": 0, "cashback_pct": 5}]},
                },
            ).json()["id"]
            cards = [
                http.post(
                    "/api/v1/cards",
                    json={"program_id": program, "phone": f"+7916555{i:04d}", "name": f"Гость {i}"},
                ).json()["code"]
                for i in range(5)
            ]

        def load() -> None:
            with httpx.Client(base_url=base, headers=auth, timeout=30) as http:
                n = 0
                while not stop.is_set():
                    r = http.post(
                        "/api/v1/purchases",
                        headers={"Idempotency-Key": uuid.uuid4().hex},
                        json={"card": cards[n % len(cards)], "amount": 10000 + n},
                    )
                    if r.status_code == 201:
                        acked.append((time.monotonic(), r.json()["id"]))
                    else:
                        errors.append(r.text)
                    n += 1

        thread = threading.Thread(target=load)
        thread.start()
        deadline = time.monotonic() + 120
        while len(acked) < 20:
            assert thread.is_alive() and not errors and time.monotonic() < deadline, errors[:3]
            time.sleep(0.05)
        backup_started = time.monotonic()
        archive = tmp_path / "backups"
        archive.mkdir()
        # The passphrase as a line on standard input (the timer uses the environment).
        made = _cli(env, "backup", str(archive), stdin="s3cret passphrase\n")
        after = len(acked)
        deadline = time.monotonic() + 120
        while len(acked) < after + 10:  # the load goes on after the backup too
            assert thread.is_alive() and not errors and time.monotonic() < deadline, errors[:3]
            time.sleep(0.05)
        stop.set()
        thread.join(timeout=60)
    finally:
        stop.set()
        server.terminate()
        server.wait(timeout=30)
    assert made.returncode == 0, made.stderr
    assert not errors, errors[:3]
    [file] = list(archive.glob("*.lwbackup"))
    assert b"pii_key" not in file.read_bytes()  # encrypted, not a plain tar

    port2 = free_port()
    restored_env = _env(tmp_path / "restored", target_url, port2)
    wrong = _cli({**restored_env, "LOYALWALLET_BACKUP_PASSPHRASE": "nope"}, "restore", str(file))
    assert wrong.returncode == 1 and "wrong passphrase" in wrong.stderr
    done = _cli({**restored_env, "LOYALWALLET_BACKUP_PASSPHRASE": "s3cret passphrase"}, "restore", str(file))
    assert done.returncode == 0, done.stderr
    # A second restore over it is refused: restore only fills an empty installation.
    again = _cli({**restored_env, "LOYALWALLET_BACKUP_PASSPHRASE": "s3cret passphrase"}, "restore", str(file))
    assert again.returncode == 1 and "not empty" in again.stderr
    assert _cli(restored_env, "migrate").returncode == 0
    ledger = _cli(restored_env, "check-ledger")
    assert ledger.returncode == 0, ledger.stdout + ledger.stderr

    engine = create_engine(normalise_database_url(target_url))
    with engine.connect() as conn:
        present = {row[0] for row in conn.execute(text("SELECT id FROM purchases"))}
    engine.dispose()
    before = {pid for when, pid in acked if when < backup_started}
    assert before <= present, sorted(before - present)[:10]
    assert present <= {pid for _, pid in acked}  # nothing that was never acknowledged

    # The restored installation reads its guests: the phone's blind index and the sealed
    # name need the restored keys; the API key (stored hashed) still works.
    server = _serve(restored_env, port2, tmp_path / "restored.log")
    try:
        r = httpx.get(
            f"http://127.0.0.1:{port2}/api/v1/cards", params={"phone": "+79165550003"}, headers=auth
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert r.status_code == 200, r.text
    [card] = r.json()["items"]
    assert card["code"] == cards[3]
