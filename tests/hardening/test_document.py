"""Requests the OpenAPI document calls valid are not refused for reasons it does not state
(schemathesis positive_data_acceptance, ST202): JSON numbers are numbers (35000.0 is the
integer 35000), and the document says what every operation refuses (control characters,
64-bit integers, free-form values, the Idempotency-Key's length)."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

from support import Shop


def _body(shop: Shop, text: str, key: str) -> Any:
    return shop.call(
        "POST",
        "/api/v1/purchases",
        role="cashier",
        headers={"Content-Type": "application/json", "Idempotency-Key": key},
        content=text.encode(),
    )


def test_an_integral_number_is_an_integer(shop: Shop) -> None:
    code = shop.card(shop.program())["code"]
    r = _body(shop, f'{{"card": "{code}", "amount": 35000.0, "external_id": "a 1.0 text"}}', "float-1")
    assert r.status_code == 201, r.text
    assert r.json()["amount"] == 35000
    r = _body(shop, f'{{"card": "{code}", "amount": 3.5e4}}', "float-2")
    assert r.status_code == 201, r.text
    # A fraction, a string or a boolean is still not an amount; nothing was written.
    for i, amount in enumerate(("350.5", '"35000"', "true", "1e30")):
        r = _body(shop, f'{{"card": "{code}", "amount": {amount}}}', f"bad-{i}")
        assert r.status_code == 422 and r.json()["code"] == "validation_error", amount
    assert shop.get(f"/api/v1/cards/{code}").json()["visits"] == 2


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        out.append((path, node))
        for key, value in node.items():
            if key not in ("example", "examples", "default", "enum", "const"):
                out.extend(_walk(value, f"{path}/{key}"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out.extend(_walk(value, f"{path}/{i}"))
    return out


def test_the_document_states_the_common_refusals(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    nodes = [(w, n) for w, n in _walk(doc) if not w.startswith("/components/schemas/Problem")]
    for where, node in nodes:
        if node.get("type") == "string":
            assert {"pattern", "format", "enum", "const"} & node.keys(), where
            if "pattern" in node:
                assert re.compile(node["pattern"])
        if node.get("type") in ("integer", "number"):
            assert node.get("minimum", -(2**64)) >= -(2**63) and node.get("maximum", 2**64) < 2**63, where
        if node.get("type") == "object":
            assert node.get("additionalProperties") not in (None, True, {}), where
        assert not {"ge", "le", "gt", "lt"} & node.keys(), where  # pydantic's words, not JSON Schema's
    key = doc["paths"]["/api/v1/purchases"]["post"]["parameters"]
    [idem] = [p for p in key if p["name"] == "Idempotency-Key"]
    assert (idem["schema"]["minLength"], idem["schema"]["maxLength"]) == (1, 255)
    assert "Json" in doc["components"]["schemas"]
    text = next(n for _w, n in nodes if n.get("type") == "string" and n.get("pattern", "").startswith("^[^"))
    assert re.match(text["pattern"], "Latte\tтабуляция\n") and not re.match(text["pattern"], "a\x00b")


def test_a_problem_may_quote_the_refused_text(client: TestClient, shop: Shop) -> None:
    doc = client.get("/openapi.json").json()
    assert "pattern" not in doc["components"]["schemas"]["Problem"]["properties"]["detail"]
    r = shop.get("/api/v1/programs", params={"a\x1e": "1"})
    assert r.status_code == 422 and "\x1e" in r.json()["detail"]
