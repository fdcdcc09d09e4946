"""A longer schemathesis run over /openapi.json (`make fuzz`): a fresh install under a
temporary data dir (SQLite, or PostgreSQL with --database-url), `loyalwallet serve` as its
own process, then `st run` with the checks of tests/hardening/test_fuzz.py. Prints the
figures (operations, requests, failures by code) and exits non-zero on any failure.

    .venv/bin/python bench/fuzz.py [--seconds 600] [--examples 100] [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import fuzzing


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--examples", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--database-url", default=None)
    args = ap.parse_args()
    data = Path(tempfile.mkdtemp(prefix="lw-fuzz-"))
    env = {**os.environ, "LOYALWALLET_DATA_DIR": str(data), "LOYALWALLET_RUN_WORKER": "0"}
    fresh = None
    if args.database_url:  # a fresh database on that server, dropped at the end
        from sqlalchemy import create_engine, text

        from loyalwallet.config import normalise_database_url

        fresh = f"lwfuzz_{os.getpid()}"
        admin = create_engine(normalise_database_url(args.database_url), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{fresh}"'))
        env["LOYALWALLET_DATABASE_URL"] = args.database_url.rsplit("/", 1)[0] + "/" + fresh
    cli = [sys.executable, "-c", "from loyalwallet.cli import main; main()"]
    subprocess.run([*cli, "migrate"], env=env, check=True, capture_output=True)
    made = subprocess.run(
        [*cli, "merchant", "create", "--name", "Fuzz", "--json"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    key = json.loads(made.stdout)["api_key"]
    port = _port()
    server = subprocess.Popen(
        [*cli, "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(url + "/healthz", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        result = fuzzing.run(
            url, key, data / "st.json", max_time=args.seconds, examples=args.examples, workers=args.workers
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
        if fresh:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{fresh}" WITH (FORCE)'))
    got = fuzzing.figures(result)
    print(json.dumps(got, indent=2))
    return 1 if got["failures"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
