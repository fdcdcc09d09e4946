"""An unexpected error is still an answer: problem+json `internal_error` with a request id
(also in the log), the kept-alive connection stays usable, and nothing is written."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import Request
from sqlalchemy import func, select

from loyalwallet import db
from loyalwallet.merchants.models import Location
from support import Shop, free_port

MARK = "half-written location"


@pytest.fixture
def failing_server(settings: Any, shop: Shop) -> Iterator[str]:
    """The real app under uvicorn with two extra routes: one fails after writing."""
    import uvicorn

    from loyalwallet.api.app import create_app

    app = create_app(settings, run_worker=False)

    @app.get("/_test/port")
    def port(request: Request) -> dict[str, Any]:
        assert request.client is not None
        return {"port": request.client.port}

    @app.post("/_test/fail")
    def fail() -> None:
        with db.transaction() as session:
            session.add(Location(merchant_id=shop.merchant_id, name=MARK))
            session.flush()
            raise RuntimeError("a bug in the middle of a write")

    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{server.config.port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_a_500_is_an_answer_and_the_connection_lives_on(
    failing_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    with httpx.Client(base_url=failing_server, limits=httpx.Limits(max_connections=1), timeout=60) as client:
        first = client.get("/_test/port").json()["port"]
        with caplog.at_level(logging.ERROR, logger="loyalwallet.api"):
            r = client.post("/_test/fail", json={})
        assert r.status_code == 500
        assert r.headers["content-type"] == "application/problem+json"
        body = r.json()
        assert body["code"] == "internal_error"
        rid = body["request_id"]
        assert rid and r.headers["x-request-id"] == rid
        assert any(rid in rec.getMessage() for rec in caplog.records), "the request id is in the log"
        # The same connection answers the next request.
        again = client.get("/_test/port")
        assert again.status_code == 200
        assert again.json()["port"] == first
    with db.read() as session:
        assert session.scalar(select(func.count()).where(Location.name == MARK)) == 0


def test_request_id_is_echoed(client: Any) -> None:
    r = client.get("/healthz", headers={"X-Request-ID": "till-7-000123"})
    assert r.headers["x-request-id"] == "till-7-000123"
    assert len(client.get("/healthz").headers["x-request-id"]) >= 16
