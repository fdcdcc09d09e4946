"""The hot paths' routes, answered in front of FastAPI's own layers.

Routers marked `hot` (the fast paths': exact paths of their own) have their endpoints
called by `HotPaths` (a pure ASGI middleware), inside the Guard and the metrics (request
id, security headers, error format, body caps, timings: what every answer carries), but
before Starlette's exception middleware, FastAPI's exit stack and the router (their share
of a fast purchase's CPU was ~8 %). An endpoint with a `direct(scope, receive, send,
inner)` method is given the rest of the app (`inner`): what it does not answer itself goes
through the whole app as before (checkout.fast._Endpoint: the general route, with its
exception handlers). Endpoints without one are left to the router.

`LoyalApp` (the app's class) sends a hot path's request straight to the metrics
middleware, behind one ServerErrorMiddleware of its own (the same 500 handler), skipping
FastAPI's outer layers: its telemetry check (reads the environment three times per
request), Starlette's app call, the exception telemetry and body-limit wrappers (both
pass-throughs with FastAPI's telemetry and max_body_size off). When FastAPI's native
telemetry is on (an OpenTelemetry provider configured), every request takes the whole
stack, as before.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.types import Receive, Send
from starlette.types import Scope as StarletteScope

Scope = dict[str, Any]
ASGIApp = Any

# How long a "telemetry is off" answer is trusted (seconds): an OpenTelemetry provider set
# up while serving is seen within this time (providers are set once, at start, in practice).
TELEMETRY_RECHECK_SECONDS = 1.0


class LoyalApp(FastAPI):
    """FastAPI, with the hot paths' requests let in below its outer layers (see above)."""

    # (method, path) -> route of the hot paths (api.app sets it once the routers are in).
    hot_table: dict[tuple[str, str], Any] = {}  # replaced, never changed in place
    # ServerErrorMiddleware around the metrics middleware of the built stack; False when
    # the stack has no metrics middleware (nothing is skipped then).
    _front: Any = None
    _telemetry_off_until = 0.0
    _telemetry_on = False

    async def __call__(self, scope: StarletteScope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (scope["method"], scope["path"]) in self.hot_table:
            front = self._front
            if front is None:
                front = self._build_front()
            if front and "fastapi.telemetry" not in scope and self._telemetry_off():
                if self.root_path:
                    scope["root_path"] = self.root_path
                scope["app"] = self
                await front(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    def _build_front(self) -> Any:
        """Found in the middleware stack once it is built (by the first request, which
        takes the whole stack)."""
        from loyalwallet.ops.metrics import MetricsMiddleware

        stack = self.middleware_stack
        if stack is None:
            return None
        self._front = False
        # An app-wide max_body_size would be a layer of its own between them: kept whole.
        if isinstance(stack, ServerErrorMiddleware) and self.max_body_size is None:
            inner: Any = stack.app
            while inner is not None and not isinstance(inner, MetricsMiddleware):
                inner = getattr(inner, "app", None)
            if inner is not None:
                metrics: Any = inner
                self._front = ServerErrorMiddleware(metrics, handler=stack.handler, debug=stack.debug)
        return self._front

    def _telemetry_off(self) -> bool:
        """FastAPI's own check (`_native_telemetry.enabled()`), asked at most once a second
        while it says off; once on, it stays on (OpenTelemetry sets a provider only once)."""
        if self._telemetry_on:
            return False
        now = time.monotonic()
        if now < self._telemetry_off_until:
            return True
        if self._native_telemetry.enabled():
            self._telemetry_on = True
            return False
        self._telemetry_off_until = now + TELEMETRY_RECHECK_SECONDS
        return True


class HotPaths:
    def __init__(self, app: ASGIApp, *, paths: dict[tuple[str, str], Any]) -> None:
        self.app = app
        # (method, path) -> the route; filled by api.app once the routers are in.
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = self.paths.get((scope["method"], scope["path"]))
        if route is None:
            await self.app(scope, receive, send)
            return
        # What the router would have set (the metrics label requests by scope["route"]).
        scope["route"] = route
        scope["endpoint"] = route.endpoint
        scope["path_params"] = {}
        await route.endpoint.direct(scope, receive, send, self.app)


def hot_paths(routes: list[Any]) -> dict[tuple[str, str], Any]:
    """(method, path) -> route, for the routes of routers marked `hot` whose endpoint
    has a `direct` method (exact paths; the routers are included without a prefix)."""
    from starlette.routing import Route

    table: dict[tuple[str, str], Any] = {}
    for included in routes:
        router = getattr(included, "original_router", None)
        if router is None or not getattr(router, "hot", False):
            continue
        for route in router.routes:
            if isinstance(route, Route) and hasattr(route.endpoint, "direct") and "{" not in route.path:
                for method in route.methods or ():
                    table.setdefault((method, route.path), route)
    return table


async def read_body(receive: Any) -> bytes | None:
    """A hot endpoint's whole request body; None when the client went away first."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def receive_once(body: bytes) -> Any:
    """`receive` for the general route a hot endpoint hands a request to: the body it
    read, then a disconnect."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive
