"""Logging set-up: plain lines by default, one JSON object a line with
LOYALWALLET_LOG_FORMAT=json (with the request id of the request being served)."""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import os
from typing import Any

from loyalwallet.config import env

# The request being served: its ASGI state (where the request-id middleware puts
# `request_id`) and our own id for it when there is none there ([state, own]; own is the
# caller's X-Request-ID, or made when first asked for: the Guard's id is the one logged).
_request: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar(
    "loyalwallet_request", default=None
)


def new_id() -> str:
    """uuid.uuid4().hex without the UUID object (the same 32 hex digits, version 4 and the
    RFC 4122 variant): every request gets one, and uuid4() was a share of a purchase's CPU."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return raw.hex()


def bind_request(scope: dict[str, Any]) -> contextvars.Token[list[Any] | None]:
    """Remember the request of this task (called by the metrics middleware)."""
    state = scope.setdefault("state", {})
    own = ""
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id" and 0 < len(value) <= 128 and value.isascii():
            own = value.decode()
            break
    return _request.set([state, own])


def unbind_request(token: contextvars.Token[list[Any] | None]) -> None:
    _request.reset(token)


def current_request_id() -> str | None:
    bound = _request.get()
    if bound is None:
        return None
    state, own = bound
    found = state.get("request_id")
    if found:
        return str(found)
    if not own:
        own = bound[1] = new_id()
    return str(own)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, exception."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = current_request_id()
        if rid:
            out["request_id"] = rid
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def json_logs() -> bool:
    return (env("LOG_FORMAT", "text") or "text").lower() == "json"


def configure_logging() -> None:
    """The root logger's handler; uvicorn's loggers propagate to it (see cli._serve)."""
    root = logging.getLogger()
    if json_logs():
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        root.handlers[:] = [handler]
        root.setLevel(logging.INFO)
    else:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # alembic's first import logs one line per plugin: noise in every process (a `serve
    # --workers N` child meets it on its first /readyz, the proxy's health check).
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
