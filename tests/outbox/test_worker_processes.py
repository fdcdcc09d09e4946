"""`loyalwallet worker` as real processes against a local fake target: killed with
SIGKILL mid-delivery it loses nothing, and two of them never take the same row."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from fakes.http_target import FakeTarget, Recorded
from loyalwallet import db
from loyalwallet.config import Settings
from loyalwallet.outbox.models import OutboxMessage
from loyalwallet.outbox.service import emit_event
from support import Shop

LEASE_SECONDS = 2
WAIT_LIMIT = 90  # a safety net for a broken build, not a timing assertion


def _start_worker(
    settings: Settings, tmp_path: Path, name: str, threads: int = 1, lease: float = LEASE_SECONDS
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "LOYALWALLET_DATABASE_URL": settings.database_url,
        "LOYALWALLET_DATA_DIR": str(settings.data_dir),
        "LOYALWALLET_BASE_URL": settings.base_url,
        "LOYALWALLET_WORKER_LEASE_SECONDS": str(lease),
        "LOYALWALLET_WORKER_POLL_SECONDS": "0.1",
        "LOYALWALLET_WORKER_THREADS": str(threads),
    }
    exe = Path(sys.executable).with_name("loyalwallet")
    log = (tmp_path / f"{name}.log").open("wb")
    return subprocess.Popen([str(exe), "worker"], env=env, stdout=log, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _undelivered(merchant_id: int) -> int:
    with db.read() as session:
        return int(
            session.scalar(
                select(func.count()).where(
                    OutboxMessage.merchant_id == merchant_id, OutboxMessage.status != "done"
                )
            )
            or 0
        )


def _wait_all_done(merchant_id: int, procs: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + WAIT_LIMIT
    while _undelivered(merchant_id):
        for proc in procs:
            assert proc.poll() is None, "a worker process exited"
        if time.monotonic() > deadline:
            pytest.fail("the workers did not deliver everything")
        time.sleep(0.1)


def _events(shop: Shop, n: int) -> None:
    with db.transaction() as session:
        for i in range(n):
            emit_event(session, shop.merchant_id, "purchase.created", {"n": i})


@pytest.fixture
def target() -> Iterator[FakeTarget]:
    t = FakeTarget().start()
    yield t
    t.stop()


def _hook(shop: Shop, url: str) -> None:
    r = shop.post("/api/v1/webhooks", {"url": url, "events": ["purchase.created"]})
    assert r.status_code == 201, r.text


@pytest.mark.slow(seconds=30)
def test_kill_9_mid_delivery_loses_nothing(
    shop: Shop, target: FakeTarget, settings: Settings, tmp_path: Path
) -> None:
    n, kill_at = 20, 8
    reached, release = threading.Event(), threading.Event()
    seen = collections.Counter()

    def respond(req: Recorded) -> tuple[int, dict[str, str], bytes]:
        seen["n"] += 1
        if seen["n"] == kill_at:
            reached.set()
            release.wait(30)  # hang: the worker is stuck in this delivery when it is killed
        return 200, {}, b""

    target.respond = respond
    _hook(shop, target.url)
    _events(shop, n)

    first = _start_worker(settings, tmp_path, "first")
    try:
        assert reached.wait(WAIT_LIMIT), "the worker never got to the hanging delivery"
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
    finally:
        release.set()
        _stop(first)
    assert first.returncode == -signal.SIGKILL
    assert _undelivered(shop.merchant_id) > 0

    second = _start_worker(settings, tmp_path, "second")
    try:
        _wait_all_done(shop.merchant_id, [second])
    finally:
        _stop(second)

    got = target.received()
    events = {r.json()["data"]["n"] for r in got}
    assert events == set(range(n)), "an event was lost"
    pairs = collections.Counter(
        (r.headers["loyalwallet-delivery"], r.headers["loyalwallet-attempt"]) for r in got
    )
    assert max(pairs.values()) == 1, f"delivered twice within one attempt: {pairs.most_common(3)}"
    # The delivery in flight at the kill was sent again, as a later attempt (at-least-once).
    per_delivery = collections.Counter(r.headers["loyalwallet-delivery"] for r in got)
    hung = got[kill_at - 1].headers["loyalwallet-delivery"]
    assert per_delivery[hung] == 2
    assert len(per_delivery) == n


def test_two_worker_processes_never_take_the_same_row(
    shop: Shop, target: FakeTarget, settings: Settings, tmp_path: Path
) -> None:
    n = 120
    lock = threading.Lock()
    in_flight = {"now": 0, "max": 0}

    def respond(_req: Recorded) -> tuple[int, dict[str, str], bytes]:
        with lock:
            in_flight["now"] += 1
            in_flight["max"] = max(in_flight["max"], in_flight["now"])
        time.sleep(0.02)  # a target that takes a moment, so both workers are busy at once
        with lock:
            in_flight["now"] -= 1
        return 200, {}, b""

    target.respond = respond
    _hook(shop, target.url)
    _events(shop, n)
    # No worker dies here: a lease long enough that a loaded machine never hands a row over
    # (a row past its lease is run again by design: at-least-once).
    procs = [_start_worker(settings, tmp_path, f"w{i}", threads=1, lease=60) for i in range(2)]
    try:
        _wait_all_done(shop.merchant_id, procs)
    finally:
        for proc in procs:
            _stop(proc)

    got = target.received()
    per_delivery = collections.Counter(r.headers["loyalwallet-delivery"] for r in got)
    assert len(per_delivery) == n and set(per_delivery.values()) == {1}
    assert {r.headers["loyalwallet-attempt"] for r in got} == {"1"}
    assert {r.json()["data"]["n"] for r in got} == set(range(n))
    # One thread per process: two requests at once means both processes were delivering.
    assert in_flight["max"] >= 2
