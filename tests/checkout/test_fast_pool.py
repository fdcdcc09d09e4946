"""The fast paths' connections (checkout.fast_sql.Conns): a connection that comes back
cleanly is kept for the next request; any other one goes back through asyncpg's pool,
which rolls back, waits for a cancellation or replaces a closed connection. On PostgreSQL."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from loyalwallet.checkout import fast_sql
from loyalwallet.config import Settings

PG_URL = os.environ.get("LOYALWALLET_TEST_DATABASE_URL")

pytestmark = pytest.mark.skipif(not PG_URL, reason="the fast path runs on PostgreSQL only")


def _on_own_loop(check: Callable[[fast_sql.Conns], Awaitable[None]]) -> None:
    """Run `check` with a fresh pool, on a loop of its own in a thread of its own."""

    async def run() -> None:
        conns = await fast_sql.pool()
        try:
            await check(conns)
        finally:
            del fast_sql._pools[asyncio.get_running_loop()]
            await conns.close()
        assert conns.pool._closed

    with ThreadPoolExecutor(1) as one:
        one.submit(asyncio.run, run()).result()


def _in_use(conns: fast_sql.Conns) -> int:
    """Connections asyncpg counts as acquired (the free list's among them)."""
    return sum(1 for h in conns.pool._holders if not h.is_idle())


def test_a_clean_connection_is_kept_and_reused(settings: Settings) -> None:
    async def check(conns: fast_sql.Conns) -> None:
        async with conns.acquire() as a:
            assert await a.fetchval("SELECT 1") == 1
        assert len(conns.free) == 1
        async with conns.acquire() as b:
            assert b is a
            assert conns.free == []
        # Two at once: a second connection from the pool; both kept afterwards.
        async with conns.acquire() as c, conns.acquire() as d:
            assert c is not d
        assert len(conns.free) == 2 == _in_use(conns)

    _on_own_loop(check)


def test_an_error_or_an_open_transaction_goes_back_through_the_pool(settings: Settings) -> None:
    async def check(conns: fast_sql.Conns) -> None:
        with pytest.raises(ZeroDivisionError):
            async with conns.acquire() as a:
                await a.execute("BEGIN")
                raise ZeroDivisionError
        assert conns.free == [] and _in_use(conns) == 0
        async with conns.acquire() as b:
            assert not b.is_in_transaction()  # the pool rolled it back
            await b.execute("BEGIN")  # left open without an error: not kept either
        assert conns.free == [] and _in_use(conns) == 0
        async with conns.acquire() as c:
            assert not c.is_in_transaction()

    _on_own_loop(check)


def test_a_cancelled_request_leaves_no_transaction_and_no_leak(settings: Settings) -> None:
    async def check(conns: fast_sql.Conns) -> None:
        started = asyncio.Event()

        async def slow() -> None:
            async with conns.acquire() as conn:
                tr = conn.transaction()
                await tr.start()
                started.set()
                await conn.execute("SELECT pg_sleep(30)")

        task = asyncio.create_task(slow())
        await started.wait()
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert conns.free == [] and _in_use(conns) == 0
        for _ in range(3):
            async with conns.acquire() as conn:
                assert not conn.is_in_transaction()
                assert await conn.fetchval("SELECT 1") == 1
        assert _in_use(conns) == len(conns.free) == 1

    _on_own_loop(check)


def test_a_connection_closed_while_free_is_replaced(settings: Settings) -> None:
    async def check(conns: fast_sql.Conns) -> None:
        async with conns.acquire() as a:
            pid = a.get_server_pid()
        async with conns.acquire() as b, conns.acquire() as killer:
            assert b is a
            await killer.execute("SELECT pg_terminate_backend($1)", pid)
            await asyncio.sleep(0.2)
            with pytest.raises(Exception):  # noqa: B017 (asyncpg's own connection error)
                await b.fetchval("SELECT 1")
        # b went back through the pool (an error), killer was kept.
        assert len(conns.free) == 1
        await killer.close()  # closed while it waits in the free list
        async with conns.acquire() as c:
            assert c is not killer and c.get_server_pid() != pid
            assert await c.fetchval("SELECT 1") == 1
        assert _in_use(conns) == len(conns.free) == 1

    _on_own_loop(check)


def test_connections_stay_bounded(settings: Settings) -> None:
    async def check(conns: fast_sql.Conns) -> None:
        async def one() -> Any:
            async with conns.acquire() as conn:
                return await conn.fetchval("SELECT pg_sleep(0.05)")

        # More requests than connections: those waiting in the pool get the ones that
        # come back (none kept in the free list while anyone waits).
        await asyncio.wait_for(asyncio.gather(*(one() for _ in range(25))), 30)
        assert conns.get_size() <= 10 and len(conns.free) <= 10
        assert conns.waiting == 0

    _on_own_loop(check)
