"""PgBouncer in transaction pooling in front of PostgreSQL: the product runs through it
with LOYALWALLET_DB_PREPARE=0 (PgBouncer before 1.21 cannot carry server-side prepared
statements from one transaction to the next). Runs when the test database is PostgreSQL
and a pgbouncer binary is installed (Debian: apt-get install pgbouncer)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from loyalwallet.config import normalise_database_url
from loyalwallet.db import make_engine

PG_URL = os.environ.get("LOYALWALLET_TEST_DATABASE_URL")
PGBOUNCER = shutil.which("pgbouncer") or (
    "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None
)
pytestmark = pytest.mark.skipif(not PG_URL or not PGBOUNCER, reason="needs PostgreSQL and pgbouncer")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def bouncer_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    assert PG_URL and PGBOUNCER
    server = normalise_database_url(PG_URL)
    name = f"lwbouncer_{os.getpid()}_{int(time.time())}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    folder = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    folder.chmod(0o755)
    port = _free_port()
    (folder / "users.txt").write_text('"postgres" ""\n')
    (folder / "pgbouncer.ini").write_text(
        "[databases]\n* = host=127.0.0.1 port=5432\n[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {folder / 'users.txt'}\npool_mode = transaction\n"
        "default_pool_size = 4\nmax_client_conn = 200\n"
        "ignore_startup_parameters = extra_float_digits,options\n"
    )
    for f in folder.iterdir():
        f.chmod(0o644)
    user = ["-u", "postgres"] if os.geteuid() == 0 else []
    proc = subprocess.Popen([PGBOUNCER, *user, str(folder / "pgbouncer.ini")], stderr=subprocess.PIPE)
    try:
        for _ in range(50):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        monkeypatch.setenv("LOYALWALLET_DB_PREPARE", "0")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/{name}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        shutil.rmtree(folder, ignore_errors=True)


def _cli(url: str, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LOYALWALLET_DATABASE_URL": url, "LOYALWALLET_DATA_DIR": str(data_dir)}
    return subprocess.run(
        [sys.executable, "-m", "loyalwallet.cli", *args], env=env, capture_output=True, text=True, timeout=180
    )


def test_the_product_runs_through_pgbouncer_in_transaction_pooling(bouncer_url: str, tmp_path: Path) -> None:
    assert _cli(bouncer_url, tmp_path, "migrate").returncode == 0
    made = _cli(bouncer_url, tmp_path, "merchant", "create", "--name", "Bouncer café", "--json")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["merchant_id"] > 0
    assert _cli(bouncer_url, tmp_path, "check-ledger").returncode == 0
    # The same statements over and over, from several threads, each transaction on
    # whichever server connection PgBouncer hands out.
    engine = make_engine(bouncer_url)

    def work(i: int) -> int:
        total = 0
        for _ in range(30):
            with engine.begin() as conn:
                total += int(
                    conn.execute(text("SELECT count(*) FROM merchants WHERE id > :i"), {"i": -i}).scalar_one()
                )
        return total

    with ThreadPoolExecutor(8) as pool:
        assert all(n == 30 for n in pool.map(work, range(8)))
    engine.dispose()
