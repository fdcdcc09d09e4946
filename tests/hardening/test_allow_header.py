"""A 405 names every method the path answers (RFC 9110 `Allow`), not only those of the
first route that matched the path: a collection has one route for GET and one for POST."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from support import Shop


def _allow(r: Any) -> set[str]:
    return {m.strip() for m in r.headers["allow"].split(",")}


def test_405_lists_every_method_of_the_path(client: TestClient, shop: Shop) -> None:
    program = shop.program()
    auth = {"Authorization": f"Bearer {shop.keys['owner']}"}
    paths = client.get("/openapi.json").json()["paths"]
    for template in (
        "/api/v1/programs",
        "/api/v1/programs/{program_id}",
        "/api/v1/purchases",
        "/api/v1/fraud/rules",
    ):
        documented = {m.upper() for m in paths[template]}
        assert len(documented) > 1, template
        path = template.replace("{program_id}", str(program))
        r = client.options(path, headers=auth)
        assert r.status_code == 405, path
        assert r.headers["content-type"] == "application/problem+json"
        assert _allow(r) - {"HEAD"} == documented, (path, r.headers["allow"])
        r = client.request("TRACE", path, headers=auth)
        assert r.status_code == 405 and _allow(r) - {"HEAD"} == documented, path
