"""Alembic migrations; run them with `loyalwallet migrate` (see migrate())."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection

HERE = Path(__file__).parent


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def migrate(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def current_heads(database_url: str) -> list[str]:
    from alembic.script import ScriptDirectory

    return list(ScriptDirectory.from_config(alembic_config(database_url)).get_heads())


@dataclass(frozen=True)
class Pending:
    revision: str
    doc: str
    # None: the revision does not say; treat it as unsafe (stop old servers first).
    online_safe: bool | None


@dataclass(frozen=True)
class SchemaStatus:
    current: tuple[str, ...]
    heads: tuple[str, ...]
    pending: tuple[Pending, ...]
    # The database carries a revision this code does not know: a newer release migrated.
    ahead: bool = False

    @property
    def at_head(self) -> bool:
        return not self.pending and set(self.current) == set(self.heads)


@contextmanager
def _quiet_alembic() -> Iterator[None]:
    """Reading the state logs "Context impl ..." and "Will assume ... DDL." at INFO: noise
    when /readyz is the proxy's health check (every 10 s, deploy/Caddyfile). `migrate`
    keeps its lines: it does not come through here."""
    logger = logging.getLogger("alembic.runtime.migration")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def schema_status(connection: Connection, database_url: str) -> SchemaStatus:
    """Where the database stands against the code's migrations (for /readyz, doctor and
    `migrate --plan`): the applied revision(s), the code's head(s), what is still to run."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    with _quiet_alembic():
        script = ScriptDirectory.from_config(alembic_config(database_url))
        current = tuple(MigrationContext.configure(connection).get_current_heads())
    heads = tuple(script.get_heads())
    pending: list[Pending] = []
    known = {rev.revision for rev in script.walk_revisions()}
    if any(rev not in known for rev in current):
        return SchemaStatus(current, heads, (), ahead=True)
    for rev in script.iterate_revisions(heads, current or "base"):
        if rev.revision in current:
            continue
        safe = getattr(rev.module, "online_safe", None)
        pending.append(
            Pending(rev.revision, (rev.doc or "").strip(), safe if isinstance(safe, bool) else None)
        )
    pending.reverse()  # oldest first, the order they run in
    return SchemaStatus(current, heads, tuple(pending))
