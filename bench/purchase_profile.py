"""cProfile of POST /api/v1/purchases through the whole ASGI app, in-process.

The app is called directly (no socket, no uvicorn) on uvloop, sequentially, with the
CPU-time clock: Python calls per purchase is the steady figure on a shared machine (CPU
times swing with the others' load). Fast path only (its SERVED count is checked).

Usage:  PYTHONPATH=src:bench .venv/bin/python bench/purchase_profile.py [--n 1000] [--top 40] [--out FILE]
        [--batches B]: no profile, the process's CPU per purchase of B batches of --n
        valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=F <python> bench/purchase_profile.py
        --callgrind --n 300: instructions of 300 purchases (callgrind_annotate F | head)
A database lwbench_i14_purchase2_prof_* is made and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import tempfile
import time
import uuid
from typing import Any

import orjson
import uvloop

from benchkit import create_database, drop_database
from checkout import seed


async def _call(app: Any, key: str, code: str) -> tuple[int, bytes]:
    body = orjson.dumps({"card": code, "amount": 35_000})
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/purchases",
        "raw_path": b"/api/v1/purchases",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"bench"),
            (b"authorization", f"Bearer {key}".encode()),
            (b"idempotency-key", uuid.uuid4().hex.encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 5555),
        "server": ("127.0.0.1", 8000),
    }
    sent = False
    status = 0
    out: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        else:
            out.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(out)


async def _main(args: argparse.Namespace, key: str, codes: list[str]) -> None:
    from loyalwallet.api.app import create_app
    from loyalwallet.checkout import fast

    app = create_app(run_worker=False)
    for i in range(200):  # warm: caches, the pool, the API key's cache
        status, payload = await _call(app, key, codes[i % len(codes)])
        assert status == 201, payload
    if args.callgrind:
        # Under `valgrind --tool=callgrind --instr-atstart=no`: instructions of --n purchases
        # only (the warm-up, imports and seeding are not counted). Noise does not move them.
        os.system(f"callgrind_control -i on {os.getpid()} >/dev/null")
        for i in range(args.n):
            status, payload = await _call(app, key, codes[i % len(codes)])
            assert status == 201, payload
        os.system(f"callgrind_control -i off {os.getpid()} >/dev/null")
        return
    if args.batches:
        # No profiler: process CPU per purchase, batch by batch (the app's own CPU plus the
        # harness's few calls; PostgreSQL's CPU is another process's).
        for _ in range(args.batches):
            cpu = time.process_time()
            for i in range(args.n):
                status, payload = await _call(app, key, codes[i % len(codes)])
                assert status == 201, payload
            print(f"CPU per purchase {(time.process_time() - cpu) / args.n * 1000:.3f} ms", flush=True)
        return
    before = fast.SERVED["fast"]
    prof = cProfile.Profile(time.process_time)
    cpu = time.process_time()
    prof.enable()
    for i in range(args.n):
        status, payload = await _call(app, key, codes[i % len(codes)])
        assert status == 201, payload
    prof.disable()
    cpu = time.process_time() - cpu
    assert fast.SERVED["fast"] - before == args.n, (fast.SERVED, fast.FELL_BACK)
    stats = pstats.Stats(prof)
    calls = sum(v[1] for v in stats.stats.values())  # type: ignore[attr-defined]
    print(
        f"purchases {args.n}: Python calls per purchase {calls / args.n:.0f}, profiled CPU {cpu / args.n * 1000:.2f} ms"
    )
    if args.out:
        stats.dump_stats(args.out)
    stats.sort_stats("tottime").print_stats(args.top)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--out")
    ap.add_argument(
        "--cards", type=int, default=200, help="cards bought at in turn (few: the hourly fraud alert fires)"
    )
    ap.add_argument(
        "--batches", type=int, default=0, help="no profile: CPU per purchase of this many batches of --n"
    )
    ap.add_argument(
        "--callgrind", action="store_true", help="toggle callgrind's instrumentation around --n purchases"
    )
    args = ap.parse_args()
    url, name = create_database("lwbench_i14_purchase2_prof")
    try:
        with tempfile.TemporaryDirectory() as data_dir:
            key, codes, _ids = seed(url, data_dir, args.cards)
            os.environ.update(
                LOYALWALLET_DATABASE_URL=url, LOYALWALLET_DATA_DIR=data_dir, LOYALWALLET_RUN_WORKER="0"
            )
            uvloop.run(_main(args, key, codes))
    finally:
        drop_database(name)


if __name__ == "__main__":
    main()
