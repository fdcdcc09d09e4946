"""The OpenAPI document says what the server does about errors, for every operation at once.

FastAPI documents a 422 as `application/json` `HTTPValidationError`; ours is
`application/problem+json` (RFC 9457) with a stable `code`, and any operation may answer
400, 401, 403, 404, 405, 409, 413, 422, 428, 429 or 500 the same way. This adds the
`Problem` schema and those answers to each operation (the routes' own documented answers
are kept), so clients and the fuzzer (schemathesis) read what the wire carries.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string", "description": "stable error code (see the README's list)"},
        "request_id": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
    "additionalProperties": True,
}
PROBLEM_CONTENT = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
ERRORS = {
    "400": "The request cannot be read (not JSON, a bad header)",
    "401": "Missing or invalid credentials",
    "403": "Not allowed for this role",
    "404": "Not found",
    "405": "Method not allowed",
    "409": "Conflict with the current state",
    "410": "Gone (expired)",
    "413": "The request body is too large",
    "422": "The request is not valid",
    "428": "A precondition (Idempotency-Key) is required",
    "429": "Too many requests",
    "500": "Internal error (with a request id)",
    "502": "An outside service did not answer as expected",
    "503": "Temporarily unavailable",
}


# Files served by their path's extension: the 200 answer is that file, not JSON.
FILE_TYPES = {
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".pdf": "application/pdf",
    ".csv": "text/csv",
    ".pkpass": "application/vnd.apple.pkpass",
}


def _file_type(path: str) -> str | None:
    return next((kind for ext, kind in FILE_TYPES.items() if path.endswith(ext)), None)


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        doc = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        doc.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
        for path, item in doc.get("paths", {}).items():
            for operation in item.values():
                if not isinstance(operation, dict) or "responses" not in operation:
                    continue
                responses = operation["responses"]
                kind = _file_type(path)
                if kind and "200" in responses:
                    responses["200"]["content"] = {kind: {"schema": {"type": "string", "format": "binary"}}}
                for status, description in ERRORS.items():
                    given = responses.get(status)
                    if given is None or status == "422":
                        responses[status] = {"description": (given or {}).get("description", description)}
                    responses[status]["content"] = PROBLEM_CONTENT
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]


HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def allowed_methods(app: FastAPI, path: str) -> str | None:
    """The `Allow` of a 405 at `path`: every method the document gives the path (GET adds
    HEAD), or None for a path the document does not know (pages). Starlette's own 405 names
    only the first route whose path matched, and a path has one route per method."""
    table: list[tuple[re.Pattern[str], str]] | None = getattr(app.state, "allow_table", None)
    if table is None:
        table = []
        for template, item in app.openapi().get("paths", {}).items():
            methods = {m.upper() for m in item if m in HTTP_METHODS}
            if "GET" in methods:
                methods.add("HEAD")
            pattern = re.sub(r"\\{[^/}]+\\}", "[^/]+", re.escape(template))
            table.append((re.compile(f"^{pattern}$"), ", ".join(sorted(methods))))
        table.sort(key=lambda row: row[0].pattern.count("[^/]+"))  # literal paths first
        app.state.allow_table = table
    return next((allow for pattern, allow in table if pattern.match(path)), None)
