"""Every error the API returns is problem+json (RFC 9457) with a stable `code`."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from loyalwallet.api.openapi import allowed_methods
from loyalwallet.api.responses import problem
from loyalwallet.errors import DomainError

log = logging.getLogger("loyalwallet.api")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    422: "validation_error",
    429: "rate_limited",
    503: "unavailable",
}


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        loc = [str(part) for part in err.get("loc", ()) if part != "body"]
        out.append({"loc": loc, "msg": err.get("msg", ""), "type": err.get("type", "")})
    return out


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(_request: Request, exc: DomainError) -> Response:
        headers = {"WWW-Authenticate": "Bearer"} if exc.code == "unauthorized" else None
        return problem(exc, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> Response:
        errors = _field_errors(exc)
        if any(e["type"] == "json_invalid" for e in errors):
            return problem(
                DomainError("bad_request", "the request body is not valid JSON", reason="malformed_json")
            )
        first = errors[0] if errors else {"loc": [], "msg": "invalid"}
        where = ".".join(str(p) for p in first["loc"])
        detail = f"{where}: {first['msg']}" if where else str(first["msg"])
        return problem(DomainError("validation_error", detail, errors=errors))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = _HTTP_CODES.get(exc.status_code, "bad_request" if exc.status_code < 500 else "internal_error")
        error = DomainError(code, str(exc.detail) if exc.detail else None)
        error.status = exc.status_code
        headers = getattr(exc, "headers", None)
        allow = allowed_methods(request.app, request.url.path) if exc.status_code == 405 else None
        if allow:
            headers = {**(headers or {}), "Allow": allow}
        return problem(error, headers)

    @app.exception_handler(DataError)
    async def _data(_request: Request, exc: DataError) -> Response:
        # A value the database refused (the input guard should have caught it first): the
        # transaction was rolled back; the caller gets a 422, not a 500.
        log.warning("database refused a value: %s", exc.orig)
        return problem(DomainError("validation_error", "a value is outside what can be stored"))

    # api/guard.py answers unexpected errors first (with the request id, keeping the
    # connection); this is the last line behind it.
    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> Response:
        log.exception("unhandled error", exc_info=exc)
        return problem(DomainError("internal_error", "something went wrong on our side; nothing was written"))
