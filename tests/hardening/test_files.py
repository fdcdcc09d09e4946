"""The SQLite database and its WAL are owner-only; a new data dir is 0700 (checked on a
fresh install made by the CLI, as its own process)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path


def test_a_fresh_install_keeps_its_files_private(tmp_path: Path) -> None:
    data = tmp_path / "lw"
    env = {**os.environ, "LOYALWALLET_DATA_DIR": str(data)}
    env.pop("LOYALWALLET_DATABASE_URL", None)
    cli = [sys.executable, "-c", "from loyalwallet.cli import main; main()"]
    subprocess.run([*cli, "migrate"], env=env, check=True, capture_output=True)
    subprocess.run(
        [*cli, "merchant", "create", "--name", "Files", "--json"], env=env, check=True, capture_output=True
    )
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for name in ("loyalwallet.db", "loyalwallet.db-wal", "loyalwallet.db-shm"):
        path = data / name
        if path.exists():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
    assert (data / "loyalwallet.db").exists()
