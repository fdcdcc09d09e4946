"""Who delivers what: a handler per outbox topic, registered by the part that owns it.

A handler receives a `Delivery` and either returns (delivered), raises `Retry`/any
exception (tried again later with backoff), or raises `Permanent` (dead-lettered at
once: retrying cannot help, e.g. a 400 from a provider). A handler may open its own
transactions, and may enqueue further rows (fan-out).

A handler must finish well within the worker's lease (LOYALWALLET_WORKER_LEASE_SECONDS,
60 s): past it another worker may take the row again. Bound every network call with a
timeout and split big jobs into several rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Delivery:
    id: int
    merchant_id: int | None
    topic: str
    payload: dict[str, Any]
    attempts: int  # including this one
    created_at: dt.datetime
    max_attempts: int = 12


class Retry(Exception):
    """Try again later; `after` overrides the backoff (e.g. a Retry-After header)."""

    def __init__(self, message: str, after: float | None = None) -> None:
        super().__init__(message)
        self.after = after


class Permanent(Exception):
    """Give up: retrying cannot succeed."""


Handler = Callable[[Delivery], None]
HANDLERS: dict[str, Handler] = {}
# Jobs the worker runs every `interval` seconds: (name, interval, function).
PERIODIC: list[tuple[str, float, Callable[[], Any]]] = []


def handles(topic: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        HANDLERS[topic] = fn
        return fn

    return register


def every(name: str, seconds: float) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    def register(fn: Callable[[], Any]) -> Callable[[], Any]:
        PERIODIC[:] = [p for p in PERIODIC if p[0] != name]
        PERIODIC.append((name, seconds, fn))
        return fn

    return register


def load_all() -> None:
    """Import every module that registers handlers or periodic jobs."""
    # The dashboard's rollups (every 30 s) and snapshot (every few minutes); expired staff
    # sessions and login attempts (hourly).
    import loyalwallet.analytics.rollup
    import loyalwallet.analytics.snapshot
    import loyalwallet.campaigns.handlers
    import loyalwallet.enrollment.handlers
    import loyalwallet.fraud.handlers
    import loyalwallet.outbox.core_handlers
    import loyalwallet.wallet.apple.handlers
    import loyalwallet.web.sessions
    import loyalwallet.webhooks.handlers  # noqa: F401
    from loyalwallet.wallet.google import handlers as _google  # noqa: F401
