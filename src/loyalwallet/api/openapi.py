"""The OpenAPI document says what the server does about errors, for every operation at once.

FastAPI documents a 422 as `application/json` `HTTPValidationError`; ours is
`application/problem+json` (RFC 9457) with a stable `code`, and any operation may answer
400, 401, 403, 404, 405, 409, 413, 422, 428, 429 or 500 the same way. This adds the
`Problem` schema and those answers to each operation (the routes' own documented answers
are kept), so clients and the fuzzer (schemathesis) read what the wire carries.
"""

from __future__ import annotations

import copy
import math
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


# What api/inputs.py refuses in any text, said in the document: control characters but
# tab, newline and carriage return, and DEL. Integers are signed 64-bit.
TEXT_PATTERN = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f]*$"
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
# Idempotency-Key: 1-255 visible characters (checkout.idempotency.MAX_KEY_LENGTH).
IDEMPOTENCY_KEY = {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]([ -~]*[!-~])?$"}
_DATA_KEYS = {"example", "examples", "default", "const", "enum"}


DECIMAL_PATTERN = "^[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)$"
JSON_REF = {"$ref": "#/components/schemas/Json"}
# Any JSON the guard lets through (free-form maps, extra properties, untyped items).
JSON_SCHEMA: dict[str, Any] = {
    "description": "any JSON value without control characters in its texts, integers signed 64-bit",
    "anyOf": [
        {"type": "string", "pattern": TEXT_PATTERN},
        {"type": "integer", "minimum": INT_MIN, "maximum": INT_MAX},
        {"type": "number", "minimum": INT_MIN, "maximum": INT_MAX},
        {"type": "boolean"},
        {"type": "null"},
        {"type": "array", "items": JSON_REF},
        {"type": "object", "additionalProperties": JSON_REF, "propertyNames": {"pattern": TEXT_PATTERN}},
    ],
}
# Bounds some models give in pydantic's words: JSON Schema's names.
_BOUNDS = {"ge": "minimum", "le": "maximum", "gt": "exclusiveMinimum", "lt": "exclusiveMaximum"}


def _tighten(node: Any) -> None:
    """The document says what api/inputs.py refuses everywhere: every string without a
    pattern, format or fixed values gets TEXT_PATTERN (and every map key), every number
    the 64-bit bounds, free-form values the Json schema; a decimal's text form its
    pattern. Clients (and the fuzzer) then send nothing it refuses for these reasons."""
    if isinstance(node, list):
        for item in node:
            _tighten(item)
        return
    if not isinstance(node, dict):
        return
    for ours, theirs in _BOUNDS.items():
        if ours in node:
            node.setdefault(theirs, node.pop(ours))
    kind = node.get("type")
    if kind == "string" and not {"pattern", "format", "enum", "const"} & node.keys():
        node["pattern"] = TEXT_PATTERN
    if kind in ("integer", "number"):  # within 64 bits (a bound given as a float may round past it)
        node["minimum"] = max(node.get("minimum", INT_MIN), INT_MIN)
        node["maximum"] = min(node.get("maximum", INT_MAX), INT_MAX)
        if kind == "integer":
            node["minimum"], node["maximum"] = math.ceil(node["minimum"]), math.floor(node["maximum"])
    options = node.get("anyOf")
    if isinstance(options, list) and any(isinstance(o, dict) and o.get("type") == "number" for o in options):
        for option in options:  # a Decimal: a number or its text
            if isinstance(option, dict) and option.get("type") == "string" and "pattern" not in option:
                option["pattern"] = DECIMAL_PATTERN
    if kind == "object":
        extra = node.get("additionalProperties")
        if extra is None or extra is True or extra == {}:
            node["additionalProperties"] = dict(JSON_REF)
        if extra is not False:
            node.setdefault("propertyNames", {"pattern": TEXT_PATTERN})
    if kind == "array" and node.get("items") in (None, {}):
        node["items"] = dict(JSON_REF)
    if node.get("in") == "header" and str(node.get("name", "")).lower() == "idempotency-key":
        node["schema"] = dict(IDEMPOTENCY_KEY)
        return
    for key, value in node.items():
        if key not in _DATA_KEYS:
            _tighten(value)


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
        doc.setdefault("components", {}).setdefault("schemas", {})["Problem"] = copy.deepcopy(PROBLEM_SCHEMA)
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
        _tighten(doc)
        doc["components"]["schemas"]["Json"] = JSON_SCHEMA
        # Not tightened: a problem may quote the bad input it refuses (a key with a control
        # character in `detail` and `errors`).
        doc["components"]["schemas"]["Problem"] = copy.deepcopy(PROBLEM_SCHEMA)
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
