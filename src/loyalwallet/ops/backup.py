"""`loyalwallet backup FILE` / `restore FILE`: one encrypted archive of the database and
the secrets.

The archive is a tar of `manifest.json`, the database (PostgreSQL: `pg_dump` custom
format; SQLite: a copy made with SQLite's online backup API, so the server keeps
serving) and `secrets/*.key` (the keys that seal the guests' data and the Apple/Google
credentials: a database without them is unreadable). It is encrypted as a stream:

    b"LWBACKUP1\\n" | salt (16) | scrypt n, r, p (3 × uint32) | nonce prefix (8)
    then chunks: uint32 length | AES-256-GCM(chunk) with nonce = prefix | uint32 index
    and associated data = header | uint64 index | 1 on the last chunk else 0

so a wrong passphrase, a changed byte, a reordered or a truncated file are refused.
The key is scrypt(passphrase). Nothing here prints: the CLI does.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import shutil
import sqlite3
import struct
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import make_url

from loyalwallet import __version__

MAGIC = b"LWBACKUP1\n"
CHUNK = 1 << 20
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
SECRET_NAMES = ("pii_key", "index_key", "session_key")
SUFFIX = ".lwbackup"


class BackupError(Exception):
    """A backup or restore that cannot go on; the message says why."""


@dataclass(frozen=True)
class Target:
    """Where an installation keeps its state (read from the environment without starting
    it: a restore must not generate fresh keys first)."""

    data_dir: Path
    database_url: str

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def sqlite_path(self) -> Path:
        return Path(make_url(self.database_url).database or "")

    @property
    def libpq_url(self) -> str:
        """The URL for pg_dump / pg_restore (no SQLAlchemy driver suffix)."""
        return make_url(self.database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def target_from_env() -> Target:
    from loyalwallet.config import env, normalise_database_url

    root = Path(env("DATA_DIR") or ".loyalwallet").resolve()
    url = env("DATABASE_URL") or f"sqlite:///{root / 'loyalwallet.db'}"
    return Target(root, normalise_database_url(url))


# --- encryption -------------------------------------------------------------------------------


def _key(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    if not passphrase:
        raise BackupError("an empty passphrase")
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode())


def encrypt(src: IO[bytes], dst: IO[bytes], passphrase: str) -> None:
    salt, prefix = os.urandom(16), os.urandom(8)
    header = MAGIC + salt + struct.pack(">III", SCRYPT_N, SCRYPT_R, SCRYPT_P) + prefix
    aead = AESGCM(_key(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P))
    dst.write(header)
    index = 0
    chunk = src.read(CHUNK)
    while True:
        following = src.read(CHUNK)
        last = not following
        sealed = aead.encrypt(
            prefix + struct.pack(">I", index), chunk, header + struct.pack(">QB", index, last)
        )
        dst.write(struct.pack(">I", len(sealed)) + sealed)
        if last:
            return
        chunk, index = following, index + 1


def decrypt(src: IO[bytes], dst: IO[bytes], passphrase: str) -> None:
    header = src.read(len(MAGIC) + 16 + 12 + 8)
    if not header.startswith(MAGIC) or len(header) != len(MAGIC) + 36:
        raise BackupError("not a loyalwallet backup (or a damaged one)")
    salt = header[len(MAGIC) : len(MAGIC) + 16]
    n, r, p = struct.unpack(">III", header[len(MAGIC) + 16 : len(MAGIC) + 28])
    prefix = header[-8:]
    aead = AESGCM(_key(passphrase, salt, n, r, p))
    index = 0
    while True:
        size_bytes = src.read(4)
        if len(size_bytes) != 4:
            raise BackupError("the backup is truncated")
        (size,) = struct.unpack(">I", size_bytes)
        sealed = src.read(size)
        if len(sealed) != size:
            raise BackupError("the backup is truncated")
        nonce = prefix + struct.pack(">I", index)
        for last in (False, True):
            try:
                plain = aead.decrypt(nonce, sealed, header + struct.pack(">QB", index, last))
                break
            except InvalidTag:
                continue
        else:
            if index == 0:
                raise BackupError("wrong passphrase, or the backup was changed")
            raise BackupError(f"the backup was changed (chunk {index})")
        dst.write(plain)
        if last:
            if src.read(1):
                raise BackupError("unexpected data after the end of the backup")
            return
        index += 1


# --- backup -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BackupResult:
    path: Path
    size: int
    database: str
    seconds: float


def _dump_database(target: Target, work: Path) -> Path:
    if target.is_sqlite:
        out = work / "database.sqlite"
        source = sqlite3.connect(f"file:{target.sqlite_path}?mode=ro", uri=True)
        copy = sqlite3.connect(out)
        try:
            source.backup(copy)  # the online backup API: consistent while others write
        finally:
            copy.close()
            source.close()
        return out
    out = work / "database.dump"
    done = subprocess.run(
        ["pg_dump", "--format=custom", "--no-owner", "--no-privileges", f"--file={out}", target.libpq_url],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise BackupError(f"pg_dump failed: {done.stderr.strip()[:500]}")
    return out


def _secrets(target: Target) -> dict[str, bytes]:
    from loyalwallet.config import env

    out: dict[str, bytes] = {}
    for name in SECRET_NAMES:
        value = env(name.upper())
        path = target.data_dir / "secrets" / f"{name}.key"
        if value:
            out[name] = value.encode()
        elif path.exists():
            out[name] = path.read_bytes().strip()
        else:
            raise BackupError(f"{path} is missing: without it the backup could not be read back")
    return out


def resolve_path(path: Path, now: dt.datetime | None = None) -> Path:
    """FILE, or a new timestamped file in FILE when it is a directory (the timer's way)."""
    if path.is_dir():
        stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
        return path / f"loyalwallet-{stamp}{SUFFIX}"
    return path


def backup(path: Path, passphrase: str, target: Target | None = None) -> BackupResult:
    import time

    started = time.monotonic()
    target = target or target_from_env()
    path = resolve_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lwbackup-", dir=path.parent) as tmp:
        work = Path(tmp)
        os.chmod(work, 0o700)
        dump = _dump_database(target, work)
        manifest = {
            "format": 1,
            "loyalwallet": __version__,
            "created_at": dt.datetime.now(dt.UTC).isoformat(),
            "database": "sqlite" if target.is_sqlite else "postgresql",
            "database_file": dump.name,
            "secrets": list(SECRET_NAMES),
        }
        plain = work / "archive.tar"
        with tarfile.open(plain, "w") as tar:
            _add_bytes(tar, "manifest.json", json.dumps(manifest, indent=1).encode())
            tar.add(dump, arcname=dump.name)
            for name, value in _secrets(target).items():
                _add_bytes(tar, f"secrets/{name}.key", value)
        dump.unlink()
        partial = path.with_name(path.name + ".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with plain.open("rb") as src, os.fdopen(fd, "wb") as dst:
            encrypt(src, dst, passphrase)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(partial, path)  # a half-written backup never carries the final name
    return BackupResult(path, path.stat().st_size, str(manifest["database"]), time.monotonic() - started)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    tar.addfile(info, io.BytesIO(data))


def prune(folder: Path, keep_days: int, now: dt.datetime | None = None) -> list[Path]:
    """Delete *.lwbackup files in `folder` older than `keep_days` (never the newest one)."""
    now = now or dt.datetime.now(dt.UTC)
    files = sorted(folder.glob(f"*{SUFFIX}"), key=lambda p: p.stat().st_mtime)
    gone = []
    for p in files[:-1]:
        if now - dt.datetime.fromtimestamp(p.stat().st_mtime, dt.UTC) > dt.timedelta(days=keep_days):
            p.unlink()
            gone.append(p)
    return gone


# --- restore ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RestoreResult:
    database: str
    created_at: str
    seconds: float


def _database_is_empty(target: Target) -> bool:
    if target.is_sqlite:
        path = target.sqlite_path
        if not path.exists() or path.stat().st_size == 0:
            return True
    engine = create_engine(target.database_url)
    try:
        with engine.connect() as conn:
            return not inspect(conn).get_table_names()
    finally:
        engine.dispose()


def _members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    allowed = {"manifest.json", "database.sqlite", "database.dump"} | {
        f"secrets/{n}.key" for n in SECRET_NAMES
    }
    for m in tar.getmembers():
        if m.name not in allowed or not m.isfile():
            raise BackupError(f"unexpected entry in the backup: {m.name!r}")
        yield m


def restore(path: Path, passphrase: str, target: Target | None = None) -> RestoreResult:
    """Bring an EMPTY installation (no tables in its database) back from a backup."""
    import time

    started = time.monotonic()
    target = target or target_from_env()
    if not path.is_file():
        raise BackupError(f"{path}: no such file")
    if not _database_is_empty(target):
        raise BackupError(
            "the database is not empty: restore only into a new database "
            "(createdb, or a new SQLite path in LOYALWALLET_DATABASE_URL)"
        )
    target.data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lwrestore-", dir=target.data_dir) as tmp:
        work = Path(tmp)
        os.chmod(work, 0o700)
        plain = work / "archive.tar"
        with path.open("rb") as src, plain.open("wb") as dst:
            decrypt(src, dst, passphrase)
        with tarfile.open(plain) as tar:
            members = list(_members(tar))
            tar.extractall(work / "x", members=members, filter="data")
        os.unlink(plain)
        manifest: dict[str, Any] = json.loads((work / "x" / "manifest.json").read_text())
        kind = manifest.get("database")
        if kind != ("sqlite" if target.is_sqlite else "postgresql"):
            raise BackupError(
                f"the backup holds a {kind} database but LOYALWALLET_DATABASE_URL is "
                f"{'SQLite' if target.is_sqlite else 'PostgreSQL'}"
            )
        _put_secrets(target, work / "x" / "secrets")
        if target.is_sqlite:
            dest = target.sqlite_path
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(work / "x" / "database.sqlite"), dest)
        else:
            done = subprocess.run(
                [
                    "pg_restore",
                    "--no-owner",
                    "--no-privileges",
                    "--exit-on-error",
                    "--single-transaction",
                    f"--dbname={target.libpq_url}",
                    str(work / "x" / "database.dump"),
                ],
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                raise BackupError(f"pg_restore failed: {done.stderr.strip()[:500]}")
    return RestoreResult(str(kind), str(manifest.get("created_at")), time.monotonic() - started)


def _put_secrets(target: Target, folder: Path) -> None:
    """The backup's keys into <data dir>/secrets (mode 600). Keys already there belong to
    nothing (the database is empty) and are replaced."""
    dest = target.data_dir / "secrets"
    dest.mkdir(parents=True, exist_ok=True)
    os.chmod(dest, 0o700)
    for name in SECRET_NAMES:
        value = (folder / f"{name}.key").read_bytes()
        tmp = dest / f".{name}.key.new"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(value)
        os.replace(tmp, dest / f"{name}.key")
