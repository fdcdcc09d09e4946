"""Engine, sessions, the transaction helper and the declarative base.

SQLite and PostgreSQL behave the same for the code above this module:
- `transaction()` opens a write transaction. On SQLite it is `BEGIN IMMEDIATE`, which
  takes the database write lock up front, so two writers never interleave (SQLite's
  stand-in for row locks). On PostgreSQL it is a normal READ COMMITTED transaction and
  balance-changing code locks the card row with `SELECT ... FOR UPDATE`.
- `read()` opens a plain transaction for reads.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

import orjson
from sqlalchemy import BigInteger, DateTime, Integer, MetaData, Table, any_, bindparam, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, mapped_column, sessionmaker
from sqlalchemy.types import JSON, TypeDecorator

from loyalwallet.config import Settings, env, get_settings

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC datetimes in Python on both backends (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


# Integer on SQLite so the column aliases the rowid and autoincrements.
BigID = BigInteger().with_variant(Integer(), "sqlite")
IdPK = Annotated[int, mapped_column(BigID, primary_key=True, autoincrement=True)]
Timestamp = Annotated[dt.datetime, mapped_column(UTCDateTime(), default=utcnow)]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dt.datetime: UTCDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}
    if TYPE_CHECKING:
        # Every model is mapped to a Table (SQLAlchemy types it as any FromClause).
        __table__: ClassVar[Table]


_engine: Engine | None = None
_sessions: sessionmaker[Session] | None = None


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


# --- the connection budget ------------------------------------------------------------------
#
# PostgreSQL allows max_connections (100 by default) in all. The installation's share is
# LOYALWALLET_DB_POOL (90 by default: 10 left for psql, migrations, backups, monitoring),
# split evenly over LOYALWALLET_DB_PROCESSES processes (3 by default: e.g. two `serve`
# and one `worker`; count each `serve --workers` process). Each process keeps half its
# share open and may open the rest at a peak; past that a request waits for a free
# connection (up to 30 s) instead of being refused by the server. `db_budget_problem`
# (for `loyalwallet doctor`) says when the sum exceeds the server's max_connections.
#
# Behind PgBouncer in transaction pooling: LOYALWALLET_DB_POOL is what the processes
# ask of PgBouncer (its default_pool_size decides the server connections), and
# LOYALWALLET_DB_PREPARE=0 turns server-side prepared statements off, which PgBouncer
# before 1.21 (or without max_prepared_statements) cannot carry between transactions.


def _int_env(name: str, default: int) -> int:
    try:
        return int(env(name, str(default)) or default)
    except ValueError:
        return default


def pool_budget() -> tuple[int, int]:
    """This process's (pool_size, max_overflow): its share of LOYALWALLET_DB_POOL."""
    total = max(2, _int_env("DB_POOL", 90))
    processes = max(1, _int_env("DB_PROCESSES", 3))
    share = max(2, total // processes)
    keep = max(1, share // 2)
    return keep, share - keep


def db_budget_problem(engine: Engine) -> str | None:
    """A warning when every process taking its whole share would exceed the server's
    max_connections (less the connections reserved for superusers); None when it fits
    (or on SQLite)."""
    if engine.dialect.name != "postgresql":
        return None
    keep, overflow = pool_budget()
    processes = max(1, _int_env("DB_PROCESSES", 3))
    wanted = processes * (keep + overflow)
    with engine.connect() as conn:
        limit = int(conn.exec_driver_sql("SHOW max_connections").scalar_one())
        reserved = int(conn.exec_driver_sql("SHOW superuser_reserved_connections").scalar_one())
    if wanted > limit - reserved:
        return (
            f"{processes} process(es) x {keep + overflow} connections = {wanted} exceed PostgreSQL's "
            f"max_connections {limit} (less {reserved} reserved): lower LOYALWALLET_DB_POOL, "
            "raise max_connections, or put PgBouncer in front"
        )
    return None


def _private_sqlite_file(url: str) -> None:
    """The database holds guests' data: owner-only (0600). SQLite gives its -wal and -shm
    files the database file's mode, so they follow."""
    path = url.split("///", 1)[1] if "///" in url else ""
    if not path or path.startswith(":memory:") or path.startswith("file:"):
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(fd)
        os.chmod(path, 0o600)
        for suffix in ("-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.chmod(path + suffix, 0o600)
    except OSError:
        pass  # a read-only mount: the operator decides


def make_engine(url: str, *, pool_size: int = 20) -> Engine:
    if url.startswith("sqlite"):
        _private_sqlite_file(url)
        engine = create_engine(
            url,
            json_serializer=_json_dumps,
            json_deserializer=orjson.loads,
            connect_args={"timeout": 60, "check_same_thread": False},
            pool_size=pool_size,
            max_overflow=40,
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            # Freed space is zeroed: an erased guest's old bytes do not linger in free pages.
            cur.execute("PRAGMA secure_delete=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            immediate = conn.get_execution_options().get("sqlite_immediate", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    keep, overflow = pool_budget()
    prepare = (env("DB_PREPARE", "1") or "1").lower() not in ("0", "false", "no", "off")
    return create_engine(
        url,
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
        pool_size=keep,
        max_overflow=overflow,
        # No pre-ping: it costs a round trip on every checkout; a dropped connection is
        # invalidated by SQLAlchemy on its first error, and old ones are recycled.
        pool_recycle=1800,
        # Prepared statements after the first use: the hot checkout path runs the same
        # handful of statements over and over.
        # Off (None) behind PgBouncer without prepared-statement support (above).
        connect_args={"prepare_threshold": 1 if prepare else None},
    )


def init_engine(settings: Settings | None = None) -> Engine:
    global _engine, _sessions
    settings = settings or get_settings()
    if _engine is not None:
        _engine.dispose()
    _engine = make_engine(settings.database_url)
    _sessions = sessionmaker(_engine, expire_on_commit=False)
    return _engine


def get_engine() -> Engine:
    if _engine is None:
        init_engine()
    assert _engine is not None
    return _engine


def is_sqlite() -> bool:
    return get_engine().dialect.name == "sqlite"


def _sessionmaker() -> sessionmaker[Session]:
    if _sessions is None:
        init_engine()
    assert _sessions is not None
    return _sessions


@contextmanager
def transaction() -> Iterator[Session]:
    """A write transaction: committed on success, rolled back on any exception."""
    with _sessionmaker()() as session, session.begin():
        # Options must reach the connection before its BEGIN is emitted.
        session.connection(execution_options={"sqlite_immediate": True})
        # Lets code that caches derived data (a signed link) write only where writing is expected.
        session.info["writable"] = True
        yield session


@contextmanager
def read() -> Iterator[Session]:
    with _sessionmaker()() as session, session.begin():
        yield session


def vacuum(table: str) -> None:
    """Make a purged table's dead rows reusable at once (PostgreSQL; nothing on SQLite).

    Retention deletes thousands of rows a minute from the queue tables; autovacuum would
    reclaim them, but where it is off or slow (a busy server, `autovacuum = off` in a
    tuned config) the table keeps growing on disk with flat row counts. A plain VACUUM of
    a bounded table takes milliseconds and no lock that blocks reads or writes;
    SKIP_LOCKED leaves it to the next run when another VACUUM holds the table."""
    engine = get_engine()
    if engine.dialect.name == "sqlite":
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(f'VACUUM (SKIP_LOCKED) "{table}"')


def for_update(stmt: Any, of: Any = None) -> Any:
    """`SELECT ... FOR UPDATE [OF table]` where row locks exist; SQLite relies on BEGIN
    IMMEDIATE. Pass `of` when the query joins other tables: without it PostgreSQL locks
    the joined rows too (every purchase would queue on its program's row)."""
    if is_sqlite():
        return stmt
    return stmt.with_for_update(of=of) if of is not None else stmt.with_for_update()


def in_ids(column: Any, values: Sequence[Any]) -> Any:
    """`column IN (values)` for a long list: on PostgreSQL `column = ANY(:array)`, ONE
    bound array (an expanded IN of 1,000 ids is compiled, rendered and parsed per
    execution: the bulk paths' largest SQLAlchemy/psycopg cost); SQLite: a plain IN."""
    if is_sqlite():
        return column.in_(list(values))
    from sqlalchemy.dialects.postgresql import ARRAY

    return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
