"""The fast purchase's statements (checkout/fast.py) and its asyncpg pool.

Statement 1 claims the Idempotency-Key, locks the card and reads everything the rules
need in one round trip; statement 2 (built by `Writer`) writes everything in one
data-modifying WITH. Every text here is fixed per variant (key or not, lots or not,
coupon code or not), so asyncpg prepares each once per connection.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from functools import lru_cache
from typing import Any

import orjson

from loyalwallet.cards import lots as lotrules
from loyalwallet.cards.models import Card, Coupon, LedgerEntry, StampEntry
from loyalwallet.checkout.models import IdempotencyRecord, Purchase, PurchaseLine
from loyalwallet.config import get_settings
from loyalwallet.customers.models import Customer
from loyalwallet.fraud.models import Alert
from loyalwallet.outbox.models import OutboxMessage

# Every column of the card and of its guest (the view and anti-fraud read them; a column
# added later comes along).
CARD_COLUMNS = tuple(c.name for c in Card.__table__.columns)
GUEST_COLUMNS = tuple(c.name for c in Customer.__table__.columns)
_COLS = ", ".join([f"c.{c}" for c in CARD_COLUMNS] + [f"u.{c} AS u_{c}" for c in GUEST_COLUMNS])
# What the rules and the view read of a coupon, in this order (json arrays: one value
# for every available coupon of the card, in one column).
COUPON_FIELDS = (
    "id",
    "code",
    "name",
    "kind",
    "value",
    "source",
    "valid_from",
    "valid_until",
    "uses_left",
    "sku",
    "category",
    "min_amount",
    "program_id",
    "card_id",
    "status",
)
_COUPON_ARRAY = "json_build_array(" + ", ".join(f"k.{f}" for f in COUPON_FIELDS) + ")"


def _facts(card: str, hour_ago: str | None, merchant: str, code: str | None, lots: bool) -> str:
    """The look-ups read with the card (for card `card`): its available coupons, its
    purchases of the last hour, its last purchase and, when asked, its open lots and the
    coupon with code `code`. Read by statement 1's snapshot, or again by REFRESH when a
    purchase of this card committed while statement 1 waited for the lock."""
    parts = [
        f"(SELECT json_agg({_COUPON_ARRAY} ORDER BY k.id) FROM coupons k"
        f" WHERE k.card_id = {card} AND k.status = 'available') AS rewards",
    ]
    if hour_ago is not None:  # anti-fraud (a quote needs none)
        parts.append(
            f"(SELECT count(*) FROM purchases WHERE purchases.card_id = {card}"
            f" AND purchases.created_at >= {hour_ago}) AS hourly"
        )
        parts.append(
            f"(SELECT max(created_at) FROM purchases WHERE purchases.card_id = {card}) AS last_purchase"
        )
    if lots:
        parts.append(
            "(SELECT json_agg(json_build_array(l.id, l.remaining, l.expires_at, l.available_at))"
            f" FROM ledger_entries l WHERE l.card_id = {card} AND l.remaining > 0) AS lots"
        )
    if code is not None:
        parts.append(
            f"(SELECT {_COUPON_ARRAY} FROM coupons k WHERE k.merchant_id = {merchant} AND k.code = {code})"
            " AS coupon"
        )
    return ",\n       ".join(parts)


_CLAIM = """
WITH claim AS (
    INSERT INTO idempotency_records (merchant_id, scope, key, request_hash, created_at, expires_at)
    VALUES ($1, 'purchase', $4, $5, $6, $7)
    ON CONFLICT (merchant_id, scope, key) DO NOTHING RETURNING id
)"""
# The answer stored under the key, when the key was claimed before this statement began
# (a replay answered from statement 1).
_STORED = (
    "(SELECT json_build_array(r.request_hash, r.status_code, r.response, r.expires_at)"
    " FROM idempotency_records r WHERE r.merchant_id = $1 AND r.scope = 'purchase' AND r.key = $4) AS stored"
)


@lru_cache(maxsize=16)
def read(key: bool, lots: bool, coupon: bool) -> str:
    """Statement 1 of the locking shape. Parameters: $1 merchant, $2 card code, $3 an
    hour ago; with a key $4 key, $5 body hash, $6 now, $7 expiry; then the coupon code."""
    code = f"${8 if key else 4}" if coupon else None
    extra = [_facts("c.id", "$3", "$1", code, lots)]
    if key:
        extra.append(_STORED)
    return f"""{_CLAIM if key else ""}
SELECT {"(SELECT id FROM claim)" if key else "NULL::bigint"} AS record_id,
       (SELECT s.version FROM cards s WHERE s.id = c.id) AS snapshot_version,
       {_common(extra)}
FOR UPDATE OF c
"""


@lru_cache(maxsize=16)
def read_unlocked(key: bool, lots: bool, coupon: bool) -> str:
    """Statement 1 of the optimistic shape: no lock, no claim, outside a transaction; the
    card's row version (xmin) read with it guards statement 2. Parameters: $1 merchant,
    $2 card code, $3 an hour ago; with a key $4 key; then the coupon code."""
    code = f"${5 if key else 4}" if coupon else None
    extra = [_facts("c.id", "$3", "$1", code, lots), _STORED if key else "NULL::json AS stored"]
    return f"""
SELECT NULL::bigint AS record_id, c.xmin::text AS row_version,
       {_common(extra)}
"""


def _common(extra: list[str]) -> str:
    """What both shapes of statement 1 read (from the FROM on)."""
    return f"""nextval(pg_get_serial_sequence('purchases', 'id')) AS purchase_id,
       {_COLS},
       p.kind AS p_kind, p.name AS p_name, p.rules AS p_rules, p.version AS p_version, p.status AS p_status,
       (SELECT m.settings -> 'fraud' FROM merchants m WHERE m.id = $1) AS fraud,
       (SELECT json_build_array(m.name, m.locale, m.timezone, m.currency, m.settings -> 'telegram')
          FROM merchants m WHERE m.id = $1) AS merchant,
       EXISTS (SELECT 1 FROM google_issuers g WHERE g.merchant_id = $1 OR g.merchant_id IS NULL) AS google,
       {",".join(extra)}
FROM cards c JOIN programs p ON p.id = c.program_id LEFT JOIN customers u ON u.id = c.customer_id
WHERE c.merchant_id = $1 AND c.code = $2"""


@lru_cache(maxsize=2)
def quote(coupon: bool) -> str:
    """The quote's one statement (no lock, nothing claimed, no anti-fraud look-ups):
    $1 merchant, $2 card code, $3 the coupon code."""
    return f"""
SELECT {_COLS},
       p.kind AS p_kind, p.name AS p_name, p.rules AS p_rules, p.version AS p_version,
       EXISTS (SELECT 1 FROM google_issuers g WHERE g.merchant_id = $1 OR g.merchant_id IS NULL) AS google,
       {_facts("c.id", None, "$1", "$3" if coupon else None, False)}
FROM cards c JOIN programs p ON p.id = c.program_id LEFT JOIN customers u ON u.id = c.customer_id
WHERE c.merchant_id = $1 AND c.code = $2
"""


@lru_cache(maxsize=8)
def refresh(lots: bool, coupon: bool) -> str:
    """The look-ups again, with a new snapshot, for the card already locked: $1 card id,
    $2 an hour ago, with a coupon code $3 merchant, $4 code."""
    return f"SELECT {_facts('$1', '$2', '$3', '$4' if coupon else None, lots)}"


def parse_time(value: str | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromisoformat(value)


def parse_lots(raw: list[list[Any]] | None) -> list[lotrules.Lot]:
    return [lotrules.Lot(int(i), int(r), parse_time(e), parse_time(a)) for i, r, e, a in raw or []]


def parse_coupon(raw: list[Any]) -> dict[str, Any]:
    out = dict(zip(COUPON_FIELDS, raw, strict=True))
    out["valid_from"] = parse_time(out["valid_from"])
    out["valid_until"] = parse_time(out["valid_until"])
    return out


def _defaults(table: Any) -> dict[str, Any]:
    """The Python-side scalar defaults of a table's columns (Core inserts apply them;
    this path writes SQL, so it applies them too: a column added with a default keeps
    working here)."""
    out = {}
    for col in table.columns:
        default = col.default
        if default is not None and getattr(default, "is_scalar", False):
            out[col.name] = default.arg
    return out


PURCHASE_DEFAULTS = _defaults(Purchase.__table__)
LEDGER_DEFAULTS = _defaults(LedgerEntry.__table__)
OUTBOX_DEFAULTS = _defaults(OutboxMessage.__table__)
LINE_DEFAULTS = _defaults(PurchaseLine.__table__)
STAMP_DEFAULTS = _defaults(StampEntry.__table__)
COUPON_DEFAULTS = _defaults(Coupon.__table__)
ALERT_DEFAULTS = _defaults(Alert.__table__)
IDEM_TABLE = IdempotencyRecord.__table__.name
OUTBOX_TABLE = OutboxMessage.__table__.name


@lru_cache(maxsize=512)
def _insert_head(table: str, names: tuple[str, ...], rows: int, before: int) -> str:
    """The text of an INSERT of `rows` rows of columns `names`, its parameters numbered
    from `before` + 1 (the same few shapes recur: built once each)."""
    n = len(names)
    values = ", ".join(
        "(" + ", ".join(f"${before + r * n + i + 1}" for i in range(n)) + ")" for r in range(rows)
    )
    return f"INSERT INTO {table} ({', '.join(names)}) VALUES {values}"


class Writer:
    """Builds statement 2 (one data-modifying WITH), numbering the parameters. The rows
    of one table go in one INSERT (their ids follow the order given, as the general
    path's one-by-one inserts do). `checked` updates must touch a row: the statement
    returns how many did not, and the caller rolls back when any did not."""

    def __init__(self) -> None:
        self.args: list[Any] = []
        self.parts: list[str] = []
        self.checks: list[str] = []

    def p(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    def _cte(self, sql: str) -> str:
        name = f"w{len(self.parts)}"
        self.parts.append(f"{name} AS ({sql})")
        return name

    def _rows(self, table: str, rows: list[dict[str, Any]]) -> str:
        """INSERT INTO table (...) VALUES (...), ... with the rows' values as parameters."""
        names = tuple(rows[0])
        head = _insert_head(table, names, len(rows), len(self.args))
        for row in rows:
            self.args.extend([row[n] for n in names])
        return head

    def insert(self, table: str, rows: list[dict[str, Any]]) -> None:
        self._cte(self._rows(table, rows))

    def insert_returning(self, table: str, rows: list[dict[str, Any]]) -> str:
        """An INSERT whose ids a later part reads (the CTE's name)."""
        return self._cte(self._rows(table, rows) + " RETURNING id")

    def insert_with_ids(self, table: Any, rows: list[dict[str, Any]], ref: str, column: str) -> None:
        """rows[:-1], then one copy of rows[-1] per id of CTE `ref` (in `column`), in one
        INSERT: ids in that order, as the general path's inserts one by one."""
        from sqlalchemy.dialects import postgresql

        names = list(rows[0])
        types = {c.name: c.type.compile(dialect=postgresql.dialect()) for c in table.columns}

        def typed(row: dict[str, Any]) -> str:
            return ", ".join(
                f"{ref}.id" if n == column and row is tail else f"{self.p(row[n])}::{types[n]}" for n in names
            )

        tail = rows[-1]
        parts = [f"SELECT 0, NULL::bigint, {typed(row)}" for row in rows[:-1]]
        parts.append(f"SELECT 1, {ref}.id, {typed(tail)} FROM {ref}")
        self._cte(
            f"INSERT INTO {table.name} ({', '.join(names)}) SELECT {', '.join(f'x.{n}' for n in names)} FROM "
            f"({' UNION ALL '.join(parts)}) AS x(o, i, {', '.join(names)}) ORDER BY x.o, x.i"
        )

    def update(
        self,
        table: str,
        key: int,
        values: dict[str, Any],
        *,
        checked: bool = False,
        version: str | None = None,
    ) -> None:
        """UPDATE one row by id; with `version`, only if its xmin is still that (checked)."""
        sets = ", ".join(f"{n} = {self.p(v)}" for n, v in values.items())
        where = f"id = {self.p(key)}"
        if version is not None:
            where += f" AND xmin::text = {self.p(version)}"
        self.raw_update(f"UPDATE {table} SET {sets} WHERE {where}", checked=checked or version is not None)

    def claim(self, row: dict[str, Any]) -> None:
        """Claim the Idempotency-Key with its answer (checked: a key claimed meanwhile
        undoes the statement)."""
        names = list(row)
        values = ", ".join(self.p(row[n]) for n in names)
        self.raw_update(
            f"INSERT INTO {IDEM_TABLE} ({', '.join(names)}) VALUES ({values})"
            " ON CONFLICT (merchant_id, scope, key) DO NOTHING",
            checked=True,
        )

    def cte(self, sql: str) -> str:
        """A part whose rows a later part reads (its name)."""
        return self._cte(sql)

    def insert_when(self, table: Any, rows: list[tuple[dict[str, Any], str | None]]) -> None:
        """Rows of one table, each written only when its SQL condition holds (None:
        always), in one INSERT: ids in the order given."""
        names = list(rows[0][0])
        types = _column_types(table)
        parts = [
            f"SELECT {i}, {', '.join(f'{self.p(row[n])}::{types[n]}' for n in names)}"
            + (f" WHERE {cond}" if cond else "")
            for i, (row, cond) in enumerate(rows)
        ]
        self._cte(
            f"INSERT INTO {table.name} ({', '.join(names)}) SELECT {', '.join(f'x.{n}' for n in names)} FROM "
            f"({' UNION ALL '.join(parts)}) AS x(o, {', '.join(names)}) ORDER BY x.o"
        )

    def raw_update(self, sql: str, *, checked: bool = False) -> None:
        name = self._cte(sql + (" RETURNING 1" if checked else ""))
        if checked:
            self.checks.append(name)

    def sql(self, atomic: bool = False) -> str:
        """The statement: it returns how many checked parts missed; `atomic`, it fails
        instead (a division by zero, which undoes every part of it: the optimistic shape
        runs it as its own transaction)."""
        missed = " + ".join(f"(1 - (SELECT count(*) FROM {name}))" for name in self.checks) or "0"
        if atomic:
            return f"WITH {', '.join(self.parts)} SELECT 1 / (CASE WHEN {missed} = 0 THEN 1 ELSE 0 END)"
        return f"WITH {', '.join(self.parts)} SELECT {missed} AS missed"


# --- connections --------------------------------------------------------------------------

# One pool per event loop (a server process has one). Held strongly: a pool dropped with
# its loop would have its connections finalised by the garbage collector in whatever
# thread runs it, on a loop that is gone (a segfault under uvloop, seen in the tests'
# several in-process servers). The entry is the task creating the pool, put in place
# before the first await: requests racing on a new loop share one pool, instead of each
# making its own and all but one being dropped (the same segfault, seen on PostgreSQL CI).
_pools: dict[asyncio.AbstractEventLoop, asyncio.Task[Conns]] = {}


async def _init(conn: Any) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name, encoder=lambda v: orjson.dumps(v).decode(), decoder=orjson.loads, schema="pg_catalog"
        )


async def _no_reset(conn: Any) -> None:
    return None


# asyncpg's own limit of statements per connection (create_pool's max_queries default):
# a connection past it goes back through the pool, which closes it.
MAX_QUERIES = 50_000


class Conns:
    """The asyncpg pool with a free list in front of it: a connection that comes back
    cleanly (no exception, open, not in a transaction, no cancellation pending, under
    MAX_QUERIES, nobody waiting for a connection) stays acquired and is kept here for
    the next request, so the usual purchase skips asyncpg's acquire and release (a task,
    a timer and a proxy each time: ~7 % of a purchase's CPU). Any other connection goes back through asyncpg's release,
    as before: it rolls back a transaction left open, waits for a cancellation, or closes
    a broken connection and replaces it. Every connection is the pool's (at most its
    max_size per process); close() hands the free ones back and closes the pool."""

    __slots__ = ("closing", "free", "pool", "waiting")

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.free: list[Any] = []  # asyncpg's connection proxies, acquired, idle
        # Requests waiting in asyncpg's acquire (the free list was empty): while any
        # wait, connections go back through the pool, where they wait for one.
        self.waiting = 0
        self.closing = False

    def acquire(self) -> Held:
        return Held(self)

    def get_size(self) -> int:
        return int(self.pool.get_size())

    async def close(self) -> None:
        self.closing = True
        free, self.free = self.free, []
        for proxy in free:
            await self.pool.release(proxy)
        await self.pool.close()


class Held:
    """`async with conns.acquire() as conn`: one connection (asyncpg's, unwrapped)."""

    __slots__ = ("conns", "proxy")

    def __init__(self, conns: Conns) -> None:
        self.conns = conns
        self.proxy: Any = None

    async def __aenter__(self) -> Any:
        conns = self.conns
        free = conns.free
        while free:
            proxy = free.pop()
            con = proxy._con  # None: closed meanwhile, and asyncpg took it back already
            if con is not None:
                if not con.is_closed():
                    self.proxy = proxy
                    return con
                await conns.pool.release(proxy)  # closed: asyncpg frees its place
        conns.waiting += 1
        try:
            self.proxy = proxy = await conns.pool.acquire()
        finally:
            conns.waiting -= 1
        return proxy._con

    async def __aexit__(self, kind: Any, error: Any, trace: Any) -> None:
        proxy, self.proxy = self.proxy, None
        con = proxy._con
        if con is None:
            return  # closed while held: asyncpg took it back already
        if (
            kind is None
            and not self.conns.waiting
            and not self.conns.closing
            and not con.is_closed()
            and not con.is_in_transaction()
            and not con._protocol._is_cancelling()
            and con._protocol.queries_count < MAX_QUERIES
        ):
            # No await from here: a cancellation cannot come between the checks and this.
            self.conns.free.append(proxy)
            return
        await self.conns.pool.release(proxy)


async def _new_pool() -> Conns:
    import asyncpg

    url = get_settings().database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    # No reset query when a connection goes back to the pool (asyncpg's default is one
    # more round trip per purchase): this path leaves no session state behind, and every
    # transaction is committed or rolled back before the release.
    return Conns(
        await asyncpg.create_pool(
            url, min_size=1, max_size=10, max_queries=MAX_QUERIES, init=_init, reset=_no_reset
        )
    )


async def pool() -> Conns:
    """One pool per event loop (the server has one; tests may make several)."""
    loop = asyncio.get_running_loop()
    task = _pools.get(loop)
    if task is None:
        task = _pools[loop] = loop.create_task(_new_pool())
    elif task.done() and not task.cancelled() and task.exception() is None:
        return task.result()  # the usual case: no shield (a task and a future per purchase)
    try:
        # shielded: a cancelled request must not cancel the pool other requests wait for
        return await asyncio.shield(task)
    except Exception:
        if task.done() and _pools.get(loop) is task:
            del _pools[loop]  # creating it failed: the next request tries again
        raise


@lru_cache(maxsize=16)
def _column_types(table: Any) -> dict[str, str]:
    """The PostgreSQL type of each column of `table` (built once: a dialect per column
    was ~11 % of a purchase's profiled CPU when it wrote an alert or a Telegram row)."""
    from sqlalchemy.dialects import postgresql

    dialect = postgresql.dialect()
    return {c.name: c.type.compile(dialect=dialect) for c in table.columns}
