"""The one gate every HTTP request passes, before and around any route (a pure ASGI middleware).

What it does for the whole app, so that every part's routes (and routes added later) get it
without a line of their own:

- a request id (the caller's `X-Request-ID` when it is sane, else a new one), echoed in the
  answer's header and written in the log line of an unexpected error;
- an unexpected error becomes an answer: problem+json `internal_error` with the request id.
  The error is not re-raised, so the server keeps the kept-alive connection open for the
  till's next request; the transaction helper has already rolled back what was begun;
- input the database cannot hold never reaches it (see `loyalwallet.api.inputs`): integers
  outside signed 64-bit and control characters in the path, the query, a JSON body or a
  form are refused with 422 (404 for an id in the path);
- request bodies are capped before anything parses them (413 `payload_too_large`);
- the security headers of every answer (see `loyalwallet.api.headers`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from loyalwallet.api import inputs
from loyalwallet.api.responses import Problem
from loyalwallet.errors import DomainError
from loyalwallet.ops.logs import new_id

log = logging.getLogger("loyalwallet.api")

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REQUEST_ID_HEADER = "x-request-id"
# The whole body, as the Guard read (and checked) it, for a hot path's endpoint
# (checkout.fast._Endpoint.direct), which then need not read it through the replay.
BODY = "loyalwallet.body"
_SANE_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def request_id(scope: Scope) -> str:
    """The id of the request being served ('' outside a request)."""
    return str(scope.get("state", {}).get("request_id", ""))


def _incoming_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if _SANE_ID.match(text):
                return text
    return new_id()


class BodyTooLarge(Exception):
    pass


class Guard:
    def __init__(self, app: ASGIApp, *, hooks: list[Any] | None = None) -> None:
        self.app = app
        # Each hook: (scope, headers: list[tuple[bytes, bytes]]) -> None, edits the answer's
        # headers in place (the security headers).
        self.hooks = hooks or []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _incoming_id(scope)
        scope.setdefault("state", {})["request_id"] = rid
        started = False
        hooks = self.hooks

        async def send_wrapped(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                headers.append((b"x-request-id", rid.encode()))
                for hook in hooks:
                    hook(scope, headers)
                message = {**message, "headers": headers}
                # Only now: a hook that failed has sent nothing, and the error is answered.
                started = True
            await send(message)

        try:
            error = inputs.check_target(scope)
            if error is not None:
                await self._problem(scope, send_wrapped, error)
                return
            limit = inputs.body_limit(scope)
            declared = inputs.content_length(scope)
            if declared is not None and declared > limit:
                await self._problem(scope, send_wrapped, _too_large(limit))
                return
            refusal = await inputs.refuse_before_body(scope)
            if refusal is not None:
                await self._problem(scope, send_wrapped, refusal)
                return
            replay = receive
            if inputs.wants_body_check(scope):
                body, more = await _read_body(receive, limit)
                normal = inputs.integral_numbers(scope, body)
                if normal is not body:  # the route reads the new body: say its length
                    body = normal
                    scope["headers"] = [
                        (k, str(len(body)).encode() if k == b"content-length" else v)
                        for k, v in scope.get("headers", [])
                    ]
                error = inputs.check_body(scope, body)
                if error is not None:
                    await self._problem(scope, send_wrapped, error)
                    return
                replay = _replaying(body, more, receive)
                if not more:
                    scope[BODY] = body
            else:
                replay = _counting(receive, limit)
            await self.app(scope, replay, send_wrapped)
        except BodyTooLarge:
            if not started:
                await self._problem(scope, send_wrapped, _too_large(inputs.body_limit(scope)))
        except Exception as exc:
            log.exception(
                "unhandled error request_id=%s %s %s",
                rid,
                scope.get("method"),
                scope.get("path"),
                exc_info=exc,
            )
            if not started:
                error = DomainError(
                    "internal_error",
                    "something went wrong on our side; nothing was written",
                    request_id=rid,
                )
                await self._problem(scope, send_wrapped, error)

    async def _problem(self, scope: Scope, send: Send, error: DomainError) -> None:
        headers = {"Connection": "close"} if error.code == "payload_too_large" else None
        response = Problem(error.problem(), status_code=error.status, headers=headers)

        async def _no_body() -> Message:
            return {"type": "http.disconnect"}

        await response(scope, _no_body, send)  # type: ignore[arg-type]


def _too_large(limit: int) -> DomainError:
    return DomainError("payload_too_large", f"the request body is larger than {limit} bytes", limit=limit)


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, list[Message]]:
    """The whole body (at most `limit` bytes), and any non-body message met after it."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), [message]
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge()
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), []


def _replaying(body: bytes, after: list[Message], receive: Receive) -> Receive:
    """The body read already, then the connection's own messages (a disconnect, later)."""
    sent = False
    pending = list(after)

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


def _counting(receive: Receive, limit: int) -> Receive:
    size = 0

    async def wrapped() -> Message:
        nonlocal size
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > limit:
                raise BodyTooLarge()
        return message

    return wrapped
