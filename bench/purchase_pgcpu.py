"""PostgreSQL CPU per fast-path purchase, sequentially, schema variants side by side.

Each variant is a worker process with its own database (lwbench_i14_pgcpu_*), seeded as
bench/checkout.py seeds it, then altered by the variant's SQL (e.g. an index dropped),
running the whole ASGI app in-process (bench/purchase_profile.py's client); the warm-up
makes every card's first purchase, then the tables are analysed. The parent asks the
workers in turn for a batch of purchases and reads, around each batch, the CPU of the
database's backends (/proc/<pid>/schedstat) and of the worker itself: alternating batches,
so the machine's load moves every variant alike. At the end, the cards' updates and HOT
updates and the sizes of the written tables' indexes.

CPU times swing with the machine's load; `--explain N` gives the steady figures: for N
purchases before and after the batches, auto_explain (session settings only, the plans sent
to this client as notices) reports each statement's buffers and WAL records and bytes.
A variant named NAME@K has its database aged first: the rows of the tables a purchase
appends to copied K times (the copied purchases days older: no fraud rule fires).

Usage:  PYTHONPATH=src:bench .venv/bin/python bench/purchase_pgcpu.py [--batches 6] [--n 1000]
            [--cards 5000] [--variant NAME=SQL ...] [--vacuum] [--explain 50]
e.g.    --variant base= --variant hot="DROP INDEX ix_cards_updated; ALTER TABLE cards SET (fillfactor=90)"
        --variant fresh= --variant aged@25=
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

WRITTEN = ("cards", "purchases", "ledger_entries", "outbox", "idempotency_records")


def proc_cpu(pid: int) -> float:
    """Seconds of CPU used by process `pid` so far (its scheduler's run time, in ns: finer
    than /proc/<pid>/stat's ticks; 0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[0]) / 1e9
    except OSError:
        return 0.0


# --- worker -------------------------------------------------------------------------------


def worker(args: argparse.Namespace) -> None:
    import psycopg
    import uvloop

    from benchkit import create_database, drop_database
    from checkout import seed

    url, name = create_database("lwbench_i14_pgcpu")
    try:
        with tempfile.TemporaryDirectory() as data_dir:
            key, codes, _ids = seed(url, data_dir, args.cards)
            with psycopg.connect(url, autocommit=True) as conn:
                for stmt in filter(None, (s.strip() for s in args.sql.split(";"))):
                    conn.execute(stmt)
                conn.execute(f"VACUUM (ANALYZE) {', '.join(WRITTEN)}")
            os.environ.update(
                LOYALWALLET_DATABASE_URL=url, LOYALWALLET_DATA_DIR=data_dir, LOYALWALLET_RUN_WORKER="0"
            )
            uvloop.run(_serve(url, key, codes, args.age))
    finally:
        drop_database(name)


def _age(conn: Any, times: int) -> None:
    """The state of a database after many more purchases: the rows of the tables a
    purchase appends to (purchases, ledger entries, outbox, stored answers), copied
    `times` times (the cards stay as they are)."""
    for table in ("purchases", "ledger_entries", "outbox", "idempotency_records"):
        cols = [
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s AND column_name <> 'id'"
                " ORDER BY ordinal_position",
                (table,),
            )
        ]
        # new keys for the stored answers; the copied purchases days older (not "in the last
        # hour": no fraud alert fires on the copies)
        shifted = {"key": "t.key || '-' || g"}
        if table == "purchases":
            shifted["created_at"] = "t.created_at - g * interval '1 day'"
        values = [shifted.get(c, f"t.{c}") for c in cols]
        conn.execute(
            f"INSERT INTO {table} ({', '.join(cols)}) SELECT {', '.join(values)}"
            f" FROM {table} t, generate_series(1, {times}) g ORDER BY g, t.id"
        )
    conn.execute(f"VACUUM {', '.join(WRITTEN)}")


async def _serve(url: str, key: str, codes: list[str], age: int = 0) -> None:
    import asyncio

    import psycopg

    from loyalwallet.api.app import create_app
    from loyalwallet.checkout import fast
    from purchase_profile import _call

    app = create_app(run_worker=False)
    n = 0
    # warm: caches, the pool, the API key's cache; and every card's first purchase made
    # (it writes first_purchase_at, in an index: never a HOT update)
    for _ in range(max(200, len(codes))):
        status, payload = await _call(app, key, codes[n % len(codes)])
        n += 1
        assert status == 201, payload
    loop = asyncio.get_running_loop()
    with psycopg.connect(url, autocommit=True) as conn:
        # Statistics of the tables as they are now (the seed analysed them empty, and this
        # server runs without autovacuum): else a connection's cached plans keep sequential
        # scans of the purchases and idempotency records as those grow. The pool's
        # connections plan again (ANALYZE invalidates their plans).
        if age:
            _age(conn, age)
        conn.execute(f"ANALYZE {', '.join(WRITTEN)}")
        me = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        print(json.dumps({"ready": True}), flush=True)
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line.strip():
                break
            cmd = json.loads(line)
            if cmd["op"] == "vacuum":
                conn.execute(f"VACUUM (ANALYZE) {', '.join(WRITTEN)}")
                print(json.dumps({}), flush=True)
                continue
            if cmd["op"] == "stats":
                print(json.dumps(_stats(conn)), flush=True)
                continue
            if cmd["op"] == "explain":
                out = await _explain(app, key, codes, n, cmd["n"])
                n += cmd["n"]
                print(json.dumps(out), flush=True)
                continue
            pids = [
                r[0]
                for r in conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> %s", (me,)
                )
            ]
            before_pg = {p: proc_cpu(p) for p in pids}
            before_self = time.process_time()
            served = fast.SERVED["fast"]
            t0 = time.perf_counter()
            for _ in range(cmd["n"]):
                status, payload = await _call(app, key, codes[n % len(codes)])
                n += 1
                assert status == 201, payload
            wall = time.perf_counter() - t0
            self_cpu = time.process_time() - before_self
            after = [
                r[0]
                for r in conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> %s", (me,)
                )
            ]
            pg = sum(proc_cpu(p) - before_pg.get(p, 0.0) for p in set(pids) | set(after))
            print(
                json.dumps(
                    {
                        "pg_ms": pg / cmd["n"] * 1000,
                        "self_ms": self_cpu / cmd["n"] * 1000,
                        "wall_ms": wall / cmd["n"] * 1000,
                        "fast": fast.SERVED["fast"] - served,
                    }
                ),
                flush=True,
            )


_COUNTERS = (
    "Shared Hit Blocks",
    "Shared Read Blocks",
    "Shared Dirtied Blocks",
    "WAL Records",
    "WAL FPI",
    "WAL Bytes",
)


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    out = [plan]
    for child in plan.get("Plans", []):
        out.extend(_nodes(child))
    return out


async def _explain(app: Any, key: str, codes: list[str], start: int, count: int) -> dict[str, Any]:
    """`count` purchases with auto_explain (ANALYZE, BUFFERS, WAL) on the fast path's
    connection, its plans sent to this client as notices (session settings only): per
    statement (1: the read, 2: the write), the buffers and WAL of its nodes, averaged.
    Deterministic where CPU times are not."""
    from loyalwallet.checkout import fast_sql as q
    from purchase_profile import _call

    pool = await q.pool()
    assert pool.get_size() == 1, pool.get_size()  # sequential: one connection to set up
    import asyncpg.connection

    # the pool drops log listeners at every release: the notices are taken where the
    # protocol hands them over (this worker's only notices)
    notices: list[str] = []
    cls: Any = asyncpg.connection.Connection
    original = cls._process_log_message
    cls._process_log_message = lambda _self, fields, _query: notices.append(fields.get("M", ""))
    async with pool.acquire() as c:
        await c.execute(
            "LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0; SET auto_explain.log_analyze = on;"
            " SET auto_explain.log_buffers = on; SET auto_explain.log_wal = on; SET auto_explain.log_timing = off;"
            " SET auto_explain.log_format = json; SET auto_explain.log_level = notice; SET client_min_messages = notice"
        )
    try:
        for i in range(count):
            status, payload = await _call(app, key, codes[(start + i) % len(codes)])
            assert status == 201, payload
    finally:
        async with pool.acquire() as c:
            await c.execute("SET auto_explain.log_min_duration = -1; RESET client_min_messages")
        cls._process_log_message = original
    sums: dict[str, dict[str, float]] = {}
    seen: dict[str, int] = {}
    for text in notices:
        if "plan:" not in text:
            continue
        doc = json.loads(text.split("plan:", 1)[1])
        plan = doc["Plan"]
        kind = "2 write" if doc.get("Query Text", "").lstrip().startswith("WITH") else "1 read"
        seen[kind] = seen.get(kind, 0) + 1
        if os.environ.get("PGCPU_DUMP"):  # the last plan of each statement, for a look
            with open(f"{os.environ['PGCPU_DUMP']}-{kind[0]}-{os.getpid()}.json", "w") as f:
                json.dump(doc, f)
        acc = sums.setdefault(kind, dict.fromkeys(_COUNTERS, 0.0))
        # A data-modifying CTE that nothing reads is not under the top node: statement 2's
        # figures are its ModifyTable nodes' (each counts its own children); statement 1's
        # the top node's.
        mods = [x for x in _nodes(plan) if x.get("Node Type") == "ModifyTable"] or [plan]
        for name in _COUNTERS:
            acc[name] += sum(x.get(name, 0) for x in mods)
    return {k: {n: v / seen[k] for n, v in acc.items()} | {"count": seen[k]} for k, acc in sums.items()}


def _stats(conn: Any) -> dict[str, Any]:
    card = conn.execute(
        "SELECT n_tup_upd, n_tup_hot_upd, n_dead_tup FROM pg_stat_user_tables WHERE relname = 'cards'"
    ).fetchone()
    sizes = conn.execute(
        "SELECT t.relname, i.relname, pg_relation_size(i.oid) FROM pg_index x"
        " JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid"
        " WHERE t.relname = ANY(%s) ORDER BY 1, 2",
        (list(WRITTEN),),
    ).fetchall()
    heap = conn.execute(
        "SELECT relname, pg_relation_size(oid) FROM pg_class WHERE relname = ANY(%s) ORDER BY 1",
        (list(WRITTEN),),
    ).fetchall()
    return {
        "cards_upd": card[0],
        "cards_hot_upd": card[1],
        "cards_dead": card[2],
        "indexes": {f"{t}.{i}": s for t, i, s in sizes},
        "heap": dict(heap),
    }


# --- parent -------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=6)
    ap.add_argument("--n", type=int, default=1000, help="purchases per batch")
    ap.add_argument("--cards", type=int, default=5000)
    ap.add_argument("--variant", action="append", default=[], help="NAME=SQL run after the seed")
    ap.add_argument("--vacuum", action="store_true", help="VACUUM (ANALYZE) before every batch")
    ap.add_argument(
        "--explain",
        type=int,
        default=0,
        help="purchases explained (buffers, WAL) per variant, first and last",
    )
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--sql", default="", help=argparse.SUPPRESS)
    ap.add_argument("--age", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    # NAME=SQL, or NAME@K=SQL: the appended tables' rows copied K times after the warm-up
    variants = [v.split("=", 1) for v in args.variant] or [["base", ""]]
    procs: dict[str, subprocess.Popen[str]] = {}
    for name, sql in variants:
        age = name.split("@")[1] if "@" in name else "0"
        procs[name] = subprocess.Popen(
            [
                sys.executable,
                "-u",
                __file__,
                "--worker",
                "--cards",
                str(args.cards),
                "--sql",
                sql,
                "--age",
                age,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
    try:
        for name, p in procs.items():
            assert p.stdout is not None
            while True:
                line = p.stdout.readline()
                if not line:
                    raise SystemExit(f"worker {name} ended")
                if line.startswith("{") and json.loads(line).get("ready"):
                    break

        def ask(name: str, cmd: dict[str, Any]) -> dict[str, Any]:
            p = procs[name]
            assert p.stdin is not None and p.stdout is not None
            p.stdin.write(json.dumps(cmd) + "\n")
            p.stdin.flush()
            while True:
                line = p.stdout.readline()
                if not line:
                    raise SystemExit(f"worker {name} ended")
                if line.startswith("{"):
                    return dict(json.loads(line))

        def explain(when: str) -> None:
            for name in procs:
                for kind, figures in sorted(ask(name, {"op": "explain", "n": args.explain}).items()):
                    print(
                        f"  explain {when} {name} statement {kind}: "
                        + ", ".join(f"{k} {v:.1f}" for k, v in figures.items()),
                        flush=True,
                    )

        if args.explain:
            explain("first")
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in procs}
        print(f"{args.batches} batches of {args.n} purchases, {args.cards} cards, vacuum={args.vacuum}")
        for b in range(args.batches):
            # alternate which variant goes first
            order = list(procs) if b % 2 == 0 else list(reversed(procs))
            load = os.getloadavg()[0]
            for name in order:
                if args.vacuum:
                    ask(name, {"op": "vacuum"})
                r = ask(name, {"op": "run", "n": args.n})
                assert r["fast"] == args.n, r
                results[name].append(r)
            print(
                f"batch {b + 1} (load {load:.1f}): "
                + " | ".join(
                    f"{name}: pg {results[name][-1]['pg_ms']:.3f} ms, app {results[name][-1]['self_ms']:.3f} ms"
                    for name in procs
                ),
                flush=True,
            )
        if args.explain:
            explain("last")
        for name in procs:
            pgs = sorted(r["pg_ms"] for r in results[name])
            print(
                f"{name}: pg ms per purchase min / median / max {pgs[0]:.3f} / {pgs[len(pgs) // 2]:.3f} / {pgs[-1]:.3f}"
            )
            st = ask(name, {"op": "stats"})
            print(f"  cards: updates {st['cards_upd']}, HOT {st['cards_hot_upd']}, dead {st['cards_dead']}")
            print("  heap bytes: " + ", ".join(f"{k} {v // 1024} kB" for k, v in st["heap"].items()))
            print("  index bytes: " + ", ".join(f"{k} {v // 1024} kB" for k, v in st["indexes"].items()))
    finally:
        for p in procs.values():
            if p.stdin:
                p.stdin.write("\n")
                p.stdin.flush()
        for p in procs.values():
            p.wait(timeout=120)


if __name__ == "__main__":
    main()
