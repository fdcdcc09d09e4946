"""What the benchmarks share: a free port, a scratch PostgreSQL database, the fake APNs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVER = "postgresql://postgres@127.0.0.1:5432/test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def database_url(name: str) -> str:
    return SERVER.rsplit("/", 1)[0] + "/" + name


def create_database(prefix: str, exact: bool = False) -> tuple[str, str]:
    """A fresh database on the local server: (its URL, its name). Named `prefix` itself
    when `exact`, else `prefix` and a random suffix."""
    import psycopg

    name = prefix if exact else f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(SERVER, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return database_url(name), name


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(SERVER, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start_fake_apns(directory: Path) -> tuple[subprocess.Popen[str], str, str]:
    """tests/fakes/apns.py (HTTP/2 over TLS) in its own process: (process, URL, CA file)."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests" / "fakes" / "apns.py"),
            "--port",
            str(port),
            "--dir",
            str(directory),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "tests")},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("ready"):
        raise RuntimeError(f"fake APNs did not start: {line!r}")
    return proc, f"https://127.0.0.1:{port}", str(directory / "apns-cert.pem")
