"""The hot paths' requests enter below FastAPI's outer layers (api/hot.py: LoyalApp) and
still get what every answer carries: a request id, the security headers, problem+json on an
unexpected error, the metrics' route label. And the settings read once per process."""

from __future__ import annotations

import os
import re
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from loyalwallet.api import inputs
from loyalwallet.caches import LRU
from loyalwallet.checkout import fast, idempotency
from loyalwallet.config import reread
from loyalwallet.ops.logs import new_id
from support import Shop


def _buy(shop: Shop, code: str) -> Any:
    return shop.post("/api/v1/purchases", {"card": code, "amount": 1000}, role="cashier")


def _is_problem_500(r: Any) -> None:
    assert r.status_code == 500, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "internal_error"


def test_a_failure_inside_the_fast_path_is_problem_json_with_the_request_id(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Neither path can answer (the fast path's own code fails before its fallback): the
    Guard's internal_error, with the request id and the security headers."""
    code = shop.card(shop.program())["code"]
    assert _buy(shop, code).status_code == 201

    def broken() -> bool:
        raise RuntimeError("a bug in the fast path")

    monkeypatch.setattr(fast, "enabled", broken)
    r = _buy(shop, code)
    _is_problem_500(r)
    assert r.json()["request_id"] == r.headers["x-request-id"]
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "no-store"


def test_a_failure_the_guard_cannot_answer_is_still_problem_json(
    client: TestClient, shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error escaping the Guard itself (here its header hook fails, so its own answer
    fails too) meets the ServerErrorMiddleware in front of the hot path: the app's 500
    handler (problem+json), not a bare 500 or a traceback."""
    code = shop.card(shop.program())["code"]
    assert _buy(shop, code).status_code == 201
    app: Any = client.app
    assert app._front, "the hot path enters below FastAPI's outer layers"
    guard = app._front.app.app  # ServerErrorMiddleware -> metrics -> Guard

    def broken_hook(scope: Any, headers: Any) -> None:
        raise RuntimeError("a bug in a header hook")

    monkeypatch.setattr(guard, "hooks", [broken_hook])
    r = _buy(shop, code)
    _is_problem_500(r)


def test_hot_requests_take_the_whole_stack_when_fastapi_telemetry_is_on(
    client: TestClient, shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = shop.card(shop.program())["code"]
    assert _buy(shop, code).status_code == 201
    app: Any = client.app
    entered: list[str] = []
    front = app._front

    async def spy(scope: Any, receive: Any, send: Any) -> None:
        entered.append(scope["path"])
        await front(scope, receive, send)

    monkeypatch.setattr(app, "_front", spy)
    r = _buy(shop, code)
    assert r.status_code == 201 and entered == ["/api/v1/purchases"]
    assert shop.get(f"/api/v1/cards/{code}").status_code == 200 and len(entered) == 1  # not hot
    # An OpenTelemetry provider set up: FastAPI's own check says on, seen at the next check.
    monkeypatch.setattr(app._native_telemetry, "enabled", lambda: True)
    monkeypatch.setattr(app, "_telemetry_off_until", 0.0)
    monkeypatch.setattr(app, "_telemetry_on", False)
    r = _buy(shop, code)
    assert r.status_code == 201 and len(entered) == 1
    assert r.headers["x-request-id"] and r.headers["x-frame-options"] == "DENY"


def test_the_fast_answer_has_the_general_answers_headers(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path's own 201 (checkout.fast.Created): the same headers, in the same
    order, as the general path's; the request id is a caller's sane one or a new uuid4."""
    code = shop.card(shop.program())["code"]
    quick = shop.post(
        "/api/v1/purchases",
        {"card": code, "amount": 1000},
        role="cashier",
        headers={"X-Request-ID": "till-7-request-42"},
    )
    monkeypatch.setattr(fast, "ENABLED", False)
    general = _buy(shop, code)
    assert quick.status_code == general.status_code == 201
    assert quick.headers["x-request-id"] == "till-7-request-42"
    assert uuid.UUID(hex=general.headers["x-request-id"]).version == 4
    skip = {"x-request-id", "content-length", "date"}
    assert [k for k in quick.headers if k not in skip] == [k for k in general.headers if k not in skip]
    assert int(quick.headers["content-length"]) == len(quick.content)


def test_new_ids_are_uuid4_hex() -> None:
    seen = {new_id() for _ in range(200)}
    assert len(seen) == 200
    for rid in seen:
        assert re.fullmatch(r"[0-9a-f]{32}", rid)
        parsed = uuid.UUID(hex=rid)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_settings_read_once_are_read_again_after_reread(
    client: TestClient, shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert inputs.max_body_bytes() == inputs.DEFAULT_BODY_BYTES
    assert idempotency.ttl().total_seconds() == idempotency.DEFAULT_TTL_HOURS * 3600
    monkeypatch.setenv("LOYALWALLET_MAX_BODY_BYTES", "100")
    monkeypatch.setenv("LOYALWALLET_IDEMPOTENCY_TTL_HOURS", "1")
    assert inputs.max_body_bytes() == inputs.DEFAULT_BODY_BYTES  # read once
    reread()
    try:
        assert inputs.max_body_bytes() == 100
        assert idempotency.ttl().total_seconds() == 3600
        r = shop.post("/api/v1/locations", {"name": "x" * 200})
        assert r.status_code == 413 and r.json()["code"] == "payload_too_large"
    finally:
        monkeypatch.delenv("LOYALWALLET_MAX_BODY_BYTES")
        monkeypatch.delenv("LOYALWALLET_IDEMPOTENCY_TTL_HOURS")
        reread()
    assert "LOYALWALLET_MAX_BODY_BYTES" not in os.environ
    assert inputs.max_body_bytes() == inputs.DEFAULT_BODY_BYTES


def test_lru_drops_the_least_recently_used() -> None:
    cache: LRU[str, int] = LRU(2)
    cache["a"] = 1
    cache["b"] = 2
    assert cache.get("a") == 1  # a is now the most recent
    cache["c"] = 3
    assert cache.get("b") is None and cache.get("a") == 1 and cache.get("c") == 3
    assert len(cache) == 2
    cache.clear()
    assert len(cache) == 0 and cache.get("a") is None
