"""Fast JSON responses (orjson) and problem+json."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse

from loyalwallet.errors import DomainError


class FastJSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


class Problem(FastJSON):
    media_type = "application/problem+json"


def idempotent(status: int, body: dict[str, Any], replayed: bool) -> FastJSON:
    """A write's answer under an Idempotency-Key: a replay of a stored answer says so."""
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return FastJSON(body, status_code=status, headers=headers)


def problem(error: DomainError, headers: dict[str, str] | None = None) -> Problem:
    return Problem(error.problem(), status_code=error.status, headers=headers)
