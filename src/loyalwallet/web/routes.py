"""The staff web app's routers, in one list for api.app._routers()."""

from __future__ import annotations

from typing import Any


def routers() -> list[Any]:
    from loyalwallet.analytics.pages import router as dashboard
    from loyalwallet.checkout.pages import router as cashier
    from loyalwallet.customers.pages import router as guests
    from loyalwallet.merchants.pages import router as team
    from loyalwallet.outbox.pages import router as deliveries
    from loyalwallet.programs.pages import router as programs
    from loyalwallet.web.login import router as login

    return [login, cashier, dashboard, programs, guests, deliveries, team]
