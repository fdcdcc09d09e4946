"""/readyz, /metrics and JSON logs, as a monitoring system and an operator meet them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from loyalwallet import db
from loyalwallet.outbox import worker as outbox_worker
from loyalwallet.outbox.service import enqueue
from support import Shop, free_port


def _sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one series in the Prometheus text format."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        series, _, rest = head.partition("{")
        if series != name:
            continue
        have = dict(part.split("=", 1) for part in rest.rstrip("}").split(",") if "=" in part)
        if all(have.get(k) == f'"{v}"' for k, v in labels.items()):
            return float(value)
    return None


def test_readyz_answers_ok_at_head(client: TestClient) -> None:
    r = client.get("/readyz")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ok"
    assert body["current"] == body["heads"]


def test_metrics_count_requests_by_route_template_and_purchases(client: TestClient, shop: Shop) -> None:
    card = shop.card(shop.program())
    before = client.get("/metrics").text
    created0 = _sample(before, "loyalwallet_purchases_total", outcome="created") or 0
    replayed0 = _sample(before, "loyalwallet_purchases_total", outcome="replayed") or 0
    key = uuid.uuid4().hex
    first = shop.post(
        "/api/v1/purchases", {"card": card["code"], "amount": 35000}, headers={"Idempotency-Key": key}
    )
    again = shop.post(
        "/api/v1/purchases", {"card": card["code"], "amount": 35000}, headers={"Idempotency-Key": key}
    )
    assert (first.status_code, again.status_code) == (201, 201), (first.text, again.text)
    assert again.headers.get("Idempotent-Replayed") == "true"
    shop.get(f"/api/v1/cards/{card['code']}")
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert _sample(text, "loyalwallet_purchases_total", outcome="created") == created0 + 1
    assert _sample(text, "loyalwallet_purchases_total", outcome="replayed") == replayed0 + 1
    # The route's template, never the card's code: a bounded number of series.
    assert (
        _sample(
            text,
            "loyalwallet_http_request_duration_seconds_count",
            method="GET",
            route="/api/v1/cards/{code}",
            status="2xx",
        )
        or 0
    ) >= 1
    # A purchase too (on PostgreSQL the fast path answers it in front of the router).
    purchases = _sample(
        text,
        "loyalwallet_http_request_duration_seconds_count",
        method="POST",
        route="/api/v1/purchases",
        status="2xx",
    )
    assert (purchases or 0) >= 2
    assert card["code"] not in text
    assert _sample(text, "loyalwallet_database_up") == 1


def test_metrics_show_outbox_depth_age_dead_rows_and_delivery_outcomes(
    client: TestClient, shop: Shop
) -> None:
    topic = f"test.metrics.{uuid.uuid4().hex[:6]}"
    from loyalwallet.outbox.handlers import HANDLERS, Permanent

    def refuse(_msg: object) -> None:
        raise Permanent("refused by the test")

    HANDLERS[topic] = refuse
    try:
        with db.transaction() as session:
            enqueue(session, shop.merchant_id, topic, {"n": 1})
            enqueue(session, shop.merchant_id, topic, {"n": 2})
        text = client.get("/metrics").text
        assert _sample(text, "loyalwallet_outbox_pending", topic=topic) == 2
        assert (_sample(text, "loyalwallet_outbox_oldest_pending_age_seconds", topic=topic) or 0) >= 0
        outbox_worker.drain()
        text = client.get("/metrics").text
        assert _sample(text, "loyalwallet_outbox_pending", topic=topic) is None
        assert _sample(text, "loyalwallet_outbox_dead", topic=topic) == 2
        assert (
            _sample(
                text, "loyalwallet_outbox_deliveries_total", topic=topic, provider="internal", outcome="dead"
            )
            == 2
        )
    finally:
        HANDLERS.pop(topic, None)


def _env(settings_dir: Path, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALWALLET_")}
    env.update(
        LOYALWALLET_DATA_DIR=str(settings_dir),
        LOYALWALLET_DATABASE_URL=database_url,
        LOYALWALLET_BASE_URL="http://127.0.0.1",
        LOYALWALLET_WORKER_HEARTBEAT_SECONDS="0.2",
    )
    return env


@pytest.mark.slow(seconds=30)
def test_serve_with_two_processes_sums_counters_and_logs_json_with_request_ids(tmp_path: Path) -> None:
    """`serve --workers 2`: whichever process answers /metrics counts both; logs are JSON
    lines carrying the request id; the embedded workers' heartbeats show."""
    env = _env(tmp_path / "data", f"sqlite:///{tmp_path / 'lw.db'}")
    env["LOYALWALLET_LOG_FORMAT"] = "json"
    env["LOYALWALLET_SLOW_REQUEST_SECONDS"] = "0"  # log every request as slow: lines with request ids
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "loyalwallet.cli", "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.3)
        # New connections each time: the kernel spreads them over both processes.
        for _ in range(40):
            assert httpx.get(f"{base}/healthz", headers={"X-Request-ID": "req-abc-123"}).status_code == 200
        httpx.get(f"{base}/no/such/page", headers={"X-Request-ID": "req-404-xyz"})
        for _ in range(6):  # health checks, as the proxy sends them (both processes answer some)
            assert httpx.get(f"{base}/readyz").status_code == 200
        seen = set()
        for _ in range(10):
            text = httpx.get(f"{base}/metrics").text
            seen.add(
                _sample(
                    text,
                    "loyalwallet_http_request_duration_seconds_count",
                    method="GET",
                    route="/healthz",
                    status="2xx",
                )
            )
        assert seen == {40.0}, seen
        assert (_sample(text, "loyalwallet_workers_alive") or 0) >= 1
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    lines = [line for line in (tmp_path / "serve.log").read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= r.keys() for r in records)
    ids = {r.get("request_id") for r in records}
    assert {"req-abc-123", "req-404-xyz"} <= ids
    # /readyz is the proxy's health check (every 10 s): it must not log alembic's set-up lines
    # each time (the start's own migrate, outside any request, may).
    noise = [r["message"] for r in records if r["logger"].startswith("alembic") and r.get("request_id")]
    assert not noise, noise
