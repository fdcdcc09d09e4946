"""The FastAPI application: every part's routes, problem+json errors, the embedded worker."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from sqlalchemy import text

from loyalwallet import __version__, db
from loyalwallet.api import errors
from loyalwallet.api.responses import FastJSON
from loyalwallet.config import Settings, configure, get_settings

log = logging.getLogger("loyalwallet")

DESCRIPTION = """
Loyalty cards for Apple Wallet, Google Wallet and the web.

Authenticate with `Authorization: Bearer <api key>`. Money is an integer in minor units
(35000 = 350.00 RUB). Errors are `application/problem+json` with a stable `code`.
POS writes accept an `Idempotency-Key` header: a retry returns the stored answer.
"""


def _routers() -> list[Any]:
    from loyalwallet.campaigns.pages import router as campaign_pages
    from loyalwallet.campaigns.routes import router as campaigns
    from loyalwallet.cards.routes import router as cards
    from loyalwallet.checkout.routes import router as checkout
    from loyalwallet.customers.routes import router as customers
    from loyalwallet.enrollment.routes import router as enrollment_pages
    from loyalwallet.enrollment.routes_api import router as enrollment_api
    from loyalwallet.fraud.pages import router as fraud_pages
    from loyalwallet.fraud.routes import router as fraud
    from loyalwallet.merchants.routes import router as merchants
    from loyalwallet.outbox.routes import router as outbox
    from loyalwallet.programs.routes import router as programs
    from loyalwallet.programs.routes_assets import router as assets
    from loyalwallet.wallet.apple.routes import router as apple
    from loyalwallet.wallet.google.routes import router as google
    from loyalwallet.web.routes import routers as web_routers
    from loyalwallet.webhooks.pages import router as webhook_pages
    from loyalwallet.webhooks.routes import router as webhooks

    return [
        programs,
        cards,
        checkout,
        merchants,
        customers,
        assets,
        enrollment_api,
        enrollment_pages,
        google,
        apple,
        *web_routers(),
        webhooks,
        outbox,
        campaigns,
        fraud,
        campaign_pages,
        fraud_pages,
        webhook_pages,
    ]


def create_app(settings: Settings | None = None, *, run_worker: bool | None = None) -> FastAPI:
    settings = configure(settings or get_settings())
    db.init_engine(settings)
    embedded = settings.run_worker if run_worker is None else run_worker

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        worker = None
        if embedded:
            from loyalwallet.outbox.worker import Worker

            worker = Worker(poll_seconds=settings.worker_poll_seconds)
            worker.start_thread()
        try:
            yield
        finally:
            if worker is not None:
                worker.stop()

    app = FastAPI(
        title="loyalwallet",
        version=__version__,
        description=DESCRIPTION,
        default_response_class=FastJSON,
        lifespan=lifespan,
    )
    errors.install(app)
    from loyalwallet.web.pages import install as install_pages

    install_pages(app)
    for router in _routers():
        app.include_router(router)
    from starlette.staticfiles import StaticFiles

    from loyalwallet.web.templating import STATIC

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/healthz", tags=["ops"], summary="Liveness and database check")
    def healthz() -> dict[str, Any]:
        with db.read() as session:
            session.execute(text("SELECT 1"))
        return {"status": "ok", "version": __version__}

    return app
