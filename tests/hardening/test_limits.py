"""Limits before work: the API key is checked before the body is read; the PassKit log
endpoint is bounded and answers JSON."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from support import Shop


def test_a_write_without_a_valid_key_is_refused_before_its_body(client: TestClient, shop: Shop) -> None:
    junk = {"content": b"{not json" + b" " * 500_000, "headers": {"Content-Type": "application/json"}}
    r = client.post("/api/v1/locations", **junk)
    assert r.status_code == 401 and r.json()["code"] == "unauthorized"
    r = client.post(
        "/api/v1/locations",
        content=junk["content"],
        headers={**junk["headers"], "Authorization": "Bearer nope"},
    )
    assert r.status_code == 401 and r.json()["code"] == "unauthorized"
    # A valid key gets as far as the body (which is not JSON).
    r = shop.call("POST", "/api/v1/locations", **junk)
    assert r.status_code == 400 and r.json()["code"] == "bad_request"


def test_passkit_log_is_bounded_and_answers_json(client: TestClient) -> None:
    from loyalwallet.wallet.apple import api as apple_api

    apple_api._log_hits.clear()
    r = client.post("/wallet/apple/v1/log", json={"logs": ["x" * 900] * 60})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == {"logged": 20}
    assert all(len(line) <= 1000 for line in apple_api.DEVICE_LOGS)
    r = client.post(
        "/wallet/apple/v1/log",
        content=b'{"logs": ["' + b"y" * 70_000 + b'"]}',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 413
    statuses: list[Any] = [
        client.post("/wallet/apple/v1/log", json={"logs": ["z"]}).status_code for _ in range(40)
    ]
    assert 429 in statuses
    apple_api._log_hits.clear()
