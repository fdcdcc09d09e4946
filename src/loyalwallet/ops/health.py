"""Is this installation's database ready for this code? (/readyz, doctor)"""

from __future__ import annotations

from dataclasses import dataclass

from loyalwallet import db
from loyalwallet.config import get_settings


@dataclass(frozen=True)
class Readiness:
    ready: bool
    status: str  # "ok", "database unreachable", "migrations pending"
    detail: str
    current: tuple[str, ...] = ()
    heads: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()


def readiness() -> Readiness:
    """Ready when the database answers and no migration of this code is still to run. A
    database ahead of the code (old servers during a rolling upgrade, after the new
    release migrated) is ready: migrations are online-safe (docs/upgrades.md)."""
    from loyalwallet.migrations import schema_status

    try:
        with db.get_engine().connect() as conn:
            status = schema_status(conn, get_settings().database_url)
    except Exception as exc:
        return Readiness(False, "database unreachable", f"{type(exc).__name__}: {str(exc)[:300]}")
    pending = tuple(p.revision for p in status.pending)
    if pending:
        return Readiness(
            False,
            "migrations pending",
            f"{len(pending)} migration(s) to run: loyalwallet migrate",
            status.current,
            status.heads,
            pending,
        )
    detail = "schema at head" if not status.ahead else "schema ahead of this code (a newer release migrated)"
    return Readiness(True, "ok", detail, status.current, status.heads)
