"""The hot paths' routes, answered in front of FastAPI's own layers (a pure ASGI middleware).

Routers marked `hot` (the fast paths': exact paths of their own) have their endpoints
called here, inside the Guard and the metrics (request id, security headers, error format,
timings: what every answer carries), but before Starlette's exception middleware,
FastAPI's exit stack and the router (their share of a fast purchase's CPU was ~8 %).
An endpoint with a `direct(scope, receive, send, inner)` method is given the rest of the
app (`inner`): what it does not answer itself goes through the whole app as before
(checkout.fast._Endpoint: the general route, with its exception handlers). Endpoints
without one are left to the router.
"""

from __future__ import annotations

from typing import Any

Scope = dict[str, Any]
ASGIApp = Any


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
