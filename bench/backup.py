"""`loyalwallet backup` and `restore` on a big PostgreSQL database, against the bare tools.

    .venv/bin/python bench/backup.py --guests 1000000 --purchases 1000000 --rounds 2
    .venv/bin/python bench/backup.py --reuse --rounds 2     # the database generated before
    .venv/bin/python bench/backup.py --drop

The data comes from bench/analytics.py's generator (SQL generate_series: N guests with a
card each, M purchases, lines, the cards' cached figures) in its own database
`lwbench_backup`. Each round, measured in the same run:
- baseline: `pg_dump -Fc` of the database to a file, and `pg_restore` of that file into a
  new empty database (what an operator would do by hand);
- ours: `loyalwallet backup DIR` (pg_dump -Fc + secrets + manifest, tar, scrypt +
  AES-256-GCM) and `loyalwallet restore FILE` into a new empty database and data dir,
  each as the operator runs it (its own process, the passphrase from the environment).
Printed: sizes, seconds min/median/max, and ours / baseline per round.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent))

import analytics

analytics.DB_NAME = "lwbench_backup"
PASSPHRASE = "bench passphrase"


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def timed(args: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    r = subprocess.run(args, env=env, capture_output=True, text=True, timeout=7200)
    elapsed = time.perf_counter() - started
    if r.returncode != 0:
        sys.exit(f"{' '.join(args[:4])} failed: {r.stderr[-2000:]}")
    return elapsed


def empty_database() -> tuple[str, str]:
    name = f"lwbench_restore_{uuid.uuid4().hex[:6]}"
    with analytics._admin().connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    base = analytics.bench_url().rpartition("/")[0]
    return f"{base}/{name}", name


def drop(name: str) -> None:
    with analytics._admin().connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def env_for(url: str, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALWALLET_")}
    env.update(
        LOYALWALLET_DATABASE_URL=libpq(url),
        LOYALWALLET_DATA_DIR=str(data_dir),
        LOYALWALLET_BACKUP_PASSPHRASE=PASSPHRASE,
    )
    return env


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--guests", type=int, default=1_000_000)
    ap.add_argument("--purchases", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--reuse", action="store_true")
    ap.add_argument("--drop", action="store_true")
    args = ap.parse_args()
    if args.drop:
        analytics.drop_db()
        return
    if not (args.reuse and analytics.db_exists()):
        analytics.generate(args.guests, args.purchases)
    source = analytics.bench_url()
    with analytics._admin().connect() as conn:
        size = conn.scalar(text("SELECT pg_database_size(:n)"), {"n": analytics.DB_NAME})
    engine = create_engine(source)
    with engine.connect() as conn:
        guests = conn.scalar(text("SELECT count(*) FROM customers"))
        purchases = conn.scalar(text("SELECT count(*) FROM purchases"))
    engine.dispose()
    analytics.say(f"database {size / 2**20:,.0f} MiB: {guests:,} guests, {purchases:,} purchases")

    python = sys.executable
    figures: dict[str, list[float]] = {"pg_dump": [], "backup": [], "pg_restore": [], "restore": []}
    archive_size = dump_size = 0
    with tempfile.TemporaryDirectory(prefix="lwbench-backup-") as tmp:
        work = Path(tmp)
        data = work / "data"
        # The installation's secrets (made on first use), as a real data dir has them.
        r = subprocess.run(
            [python, "-m", "loyalwallet.cli", "migrate"],
            env=env_for(source, data),
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, r.stderr
        for n in range(args.rounds):
            dump = work / f"plain-{n}.dump"
            figures["pg_dump"].append(timed(["pg_dump", "-Fc", "-f", str(dump), libpq(source)]))
            dump_size = dump.stat().st_size
            out = work / f"ours-{n}"
            out.mkdir()
            figures["backup"].append(
                timed([python, "-m", "loyalwallet.cli", "backup", str(out)], env_for(source, data))
            )
            [archive] = list(out.glob("*.lwbackup"))
            archive_size = archive.stat().st_size

            url, name = empty_database()
            try:
                figures["pg_restore"].append(timed(["pg_restore", "--no-owner", "-d", libpq(url), str(dump)]))
            finally:
                drop(name)
            url, name = empty_database()
            try:
                figures["restore"].append(
                    timed(
                        [python, "-m", "loyalwallet.cli", "restore", str(archive)],
                        env_for(url, work / f"restored-{n}"),
                    )
                )
            finally:
                drop(name)
            dump.unlink()
            analytics.say(
                f"round {n + 1}: pg_dump {figures['pg_dump'][-1]:.1f} s, backup {figures['backup'][-1]:.1f} s"
                f" ({figures['backup'][-1] / figures['pg_dump'][-1]:.2f}×); pg_restore"
                f" {figures['pg_restore'][-1]:.1f} s, restore {figures['restore'][-1]:.1f} s"
                f" ({figures['restore'][-1] / figures['pg_restore'][-1]:.2f}×)"
            )
    print(f"dump {dump_size / 2**20:,.0f} MiB, encrypted archive {archive_size / 2**20:,.0f} MiB")
    for what, values in figures.items():
        print(
            f"{what:>10}: min {min(values):.1f} s / median {statistics.median(values):.1f} s"
            f" / max {max(values):.1f} s"
        )
    for ours, base in (("backup", "pg_dump"), ("restore", "pg_restore")):
        ratios = [a / b for a, b in zip(figures[ours], figures[base], strict=True)]
        print(
            f"{ours} / {base}: min {min(ratios):.2f} / median {statistics.median(ratios):.2f} / max {max(ratios):.2f}"
        )


if __name__ == "__main__":
    main()
