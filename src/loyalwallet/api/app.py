"""The FastAPI application: every part's routes, problem+json errors, the embedded worker."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from sqlalchemy import text

from loyalwallet import __version__, db, wiring
from loyalwallet.api import deps, errors, inputs, openapi
from loyalwallet.api.guard import Guard
from loyalwallet.api.headers import security_headers
from loyalwallet.api.hot import HotPaths, LoyalApp, hot_paths
from loyalwallet.api.responses import FastJSON
from loyalwallet.config import Settings, configure, get_settings

log = logging.getLogger("loyalwallet")

DESCRIPTION = """
Loyalty cards for Apple Wallet, Google Wallet and the web.

Authenticate with `Authorization: Bearer <api key>`. Money is an integer in minor units
(35000 = 350.00 RUB). Errors are `application/problem+json` with a stable `code`.
POS writes accept an `Idempotency-Key` header: a retry returns the stored answer.
"""


def guard_hooks(settings: Settings) -> list[Any]:
    return [security_headers(https=settings.base_url.startswith("https://"))]


def create_app(settings: Settings | None = None, *, run_worker: bool | None = None) -> FastAPI:
    settings = configure(settings or get_settings())
    if not logging.getLogger().handlers:  # a `serve --workers N` process: nobody set logging up
        from loyalwallet.ops.logs import configure_logging

        configure_logging()
    db.init_engine(settings)
    embedded = settings.run_worker if run_worker is None else run_worker

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        worker = None
        if embedded:
            from loyalwallet.outbox.worker import Worker

            worker = Worker(poll_seconds=settings.worker_poll_seconds, kind="embedded")
            worker.start_thread()
        try:
            yield
        finally:
            if worker is not None:
                worker.stop()

    app = LoyalApp(
        title="loyalwallet",
        version=__version__,
        description=DESCRIPTION,
        default_response_class=FastJSON,
        lifespan=lifespan,
        # /docs and /redoc are web/front.py's: their scripts come from us, not a CDN.
        docs_url=None,
        redoc_url=None,
    )
    errors.install(app)
    # Inside the Guard and the metrics, in front of FastAPI's own layers: the hot paths
    # (api/hot.py); filled once the routers are in.
    hot_table: dict[tuple[str, str], Any] = {}
    app.add_middleware(HotPaths, paths=hot_table)
    # Outermost of ours: request ids, input the database cannot hold, body caps, an
    # unexpected error as an answer, security headers (api/guard.py).
    app.add_middleware(Guard, hooks=guard_hooks(settings))
    inputs.BEFORE_BODY[:] = [deps.check_before_body]
    from loyalwallet.web.sessions import COOKIE

    deps.SESSION_COOKIES[:] = [COOKIE]
    from loyalwallet.web.pages import install as install_pages

    install_pages(app)
    for router in wiring.install_http():
        app.include_router(router)
    # Routers marked `hot` (the fast paths': exact paths of their own, nothing shadowed)
    # are matched first: a purchase does not try every page's router before its own.
    routes = app.router.routes
    hot = [r for r in routes if getattr(getattr(r, "original_router", r), "hot", False)]
    routes[:] = hot + [r for r in routes if not any(r is h for h in hot)]
    hot_table.update(hot_paths(hot))
    app.hot_table = hot_table  # answered below FastAPI's outer layers (api/hot.py: LoyalApp)
    from starlette.staticfiles import StaticFiles

    from loyalwallet.web.templating import STATIC

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    from loyalwallet.ops.metrics import MetricsMiddleware

    # Outermost: times every request by its route template, binds it for the JSON logs.
    app.add_middleware(MetricsMiddleware)
    openapi.install(app)

    @app.get("/healthz", tags=["ops"], summary="Liveness and database check")
    def healthz() -> dict[str, Any]:
        with db.read() as session:
            session.execute(text("SELECT 1"))
        return {"status": "ok", "version": __version__}

    return app
