"""Quotes in-process: POST /api/v1/purchases/quote through the fast path
(checkout/fast_quote.py) and the general path, 5 alternating rounds of 200 in the same
run (httpx ASGI transport, sequential), wall time and this process's CPU per quote.

Usage:  PYTHONPATH=src .venv/bin/python bench/checkout_quote.py
Needs PostgreSQL at 127.0.0.1:5432 (trust auth); creates and drops its own database.
"""

import asyncio
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, "bench")
import checkout as bench
from benchkit import create_database, drop_database

url, name = create_database("lwquote")
data_dir = tempfile.mkdtemp()
try:
    key, codes, ids = bench.seed(url, data_dir, 200)
    os.environ.update(LOYALWALLET_DATABASE_URL=url, LOYALWALLET_DATA_DIR=data_dir, LOYALWALLET_RUN_WORKER="0")
    import httpx

    from loyalwallet import db
    from loyalwallet.api.app import create_app
    from loyalwallet.config import configure, load_settings

    st = configure(load_settings())
    db.init_engine(st)
    from loyalwallet.checkout import fast

    app = create_app(st, run_worker=False)

    async def run(n, on):
        fast.ENABLED = on
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            t = time.perf_counter()
            c0 = time.process_time()
            for i in range(n):
                r = await c.post(
                    "/api/v1/purchases/quote",
                    json={"card": codes[i % len(codes)], "amount": 35000},
                    headers={"Authorization": f"Bearer {key}"},
                )
                assert r.status_code == 200, r.text
            return (time.perf_counter() - t) / n * 1000, (time.process_time() - c0) / n * 1000

    asyncio.run(run(50, True))
    asyncio.run(run(50, False))
    res = {True: [], False: []}
    for _ in range(5):
        for on in (True, False):
            res[on].append(asyncio.run(run(200, on)))
    for on in (True, False):
        w = [x[0] for x in res[on]]
        c = [x[1] for x in res[on]]
        print(
            ("fast   " if on else "general"),
            f"wall ms/quote min/med/max {min(w):.2f}/{statistics.median(w):.2f}/{max(w):.2f}",
            f"CPU ms/quote {min(c):.2f}/{statistics.median(c):.2f}/{max(c):.2f}",
        )
    print("served", fast.SERVED)
finally:
    drop_database(name)
