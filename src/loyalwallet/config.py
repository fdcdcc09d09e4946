"""Settings from the environment (LOYALWALLET_*), gathered in one object.

Secrets (the PII encryption key, the blind-index key, the session key) come from the
environment or from files under the data dir, generated on first start when absent.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar


def env(name: str, default: str | None = None) -> str | None:
    """LOYALWALLET_<name> from the environment; parts read their own settings with it."""
    value = os.environ.get(f"LOYALWALLET_{name}")
    return value if value not in (None, "") else default


F = TypeVar("F", bound=Callable[[], Any])
# The settings read once per process (see `per_process`), forgotten by `reread`.
_PER_PROCESS: list[Any] = []


def per_process(read: F) -> F:
    """A setting a hot path asks for on every request (a body cap, a TTL), read from the
    environment once: reading it per request was a measurable share of a purchase's CPU.
    `configure()` (the CLI and every test's settings) and `reread()` forget it."""
    cached = lru_cache(maxsize=1)(read)
    _PER_PROCESS.append(cached)
    return cached  # type: ignore[return-value]


def reread() -> None:
    """Forget the settings read once (a test that changes the environment calls this)."""
    for cached in _PER_PROCESS:
        cached.cache_clear()


_env = env


def normalise_database_url(url: str) -> str:
    """Accept the plain `postgresql://` form of the contract and pick the psycopg 3 driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    base_url: str
    # 32-byte keys; see crypto.py for what each protects.
    pii_key: bytes = field(repr=False)
    index_key: bytes = field(repr=False)
    session_key: bytes = field(repr=False)
    run_worker: bool = True
    worker_poll_seconds: float = 0.5
    default_region: str = "RU"
    debug: bool = False

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def _secret(data_dir: Path, name: str) -> bytes:
    """A 32-byte secret from LOYALWALLET_<NAME> (base64) or <data_dir>/secrets/<name>.key."""
    env_value = _env(name.upper())
    if env_value:
        raw = base64.urlsafe_b64decode(env_value + "=" * (-len(env_value) % 4))
        if len(raw) != 32:
            raise RuntimeError(f"LOYALWALLET_{name.upper()} must be 32 bytes, base64-encoded")
        return raw
    path = data_dir / "secrets" / f"{name}.key"
    if path.exists():
        return base64.urlsafe_b64decode(path.read_text().strip())
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    value = secrets.token_bytes(32)
    # O_EXCL: two processes starting at once must not write two different keys.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return base64.urlsafe_b64decode(path.read_text().strip())
    with os.fdopen(fd, "w") as fh:
        fh.write(base64.urlsafe_b64encode(value).decode())
    return value


def load_settings(data_dir: str | Path | None = None, database_url: str | None = None) -> Settings:
    root = Path(data_dir or _env("DATA_DIR") or ".loyalwallet").resolve()
    if not root.exists():
        root.mkdir(parents=True, mode=0o700)  # the database, the secrets and backups live here
    url = database_url or _env("DATABASE_URL") or f"sqlite:///{root / 'loyalwallet.db'}"
    return Settings(
        data_dir=root,
        database_url=normalise_database_url(url),
        base_url=(_env("BASE_URL", "http://127.0.0.1:8000") or "").rstrip("/"),
        pii_key=_secret(root, "pii_key"),
        index_key=_secret(root, "index_key"),
        session_key=_secret(root, "session_key"),
        run_worker=_env("RUN_WORKER", "1") not in ("0", "false", "no"),
        worker_poll_seconds=float(_env("WORKER_POLL_SECONDS", "0.5") or 0.5),
        default_region=_env("DEFAULT_REGION", "RU") or "RU",
        debug=_env("DEBUG", "0") in ("1", "true", "yes"),
    )


DEMO_FILE = "demo.json"  # `loyalwallet demo` writes it into the data dir it seeded


def is_demo(settings: Settings | None = None) -> bool:
    """Whether this installation is the demo (its data dir was seeded by `loyalwallet demo`)."""
    return ((settings or get_settings()).data_dir / DEMO_FILE).exists()


_current: Settings | None = None


def configure(settings: Settings) -> Settings:
    """Make `settings` the process-wide settings (the CLI and tests call this)."""
    global _current
    _current = settings
    reread()
    return settings


def get_settings() -> Settings:
    global _current
    if _current is None:
        _current = load_settings()
    return _current
