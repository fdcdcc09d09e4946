"""What a handler is: a function per outbox topic, listed in loyalwallet/wiring.py.

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
from typing import Any, NamedTuple

from loyalwallet.config import env


@dataclass(frozen=True)
class Delivery:
    id: int
    merchant_id: int | None
    topic: str
    payload: dict[str, Any]
    attempts: int  # including this one
    created_at: dt.datetime
    max_attempts: int = 12
    priority: int = 0  # the row's lane (outbox.models): what it queues goes in the same


class Retry(Exception):
    """Try again later; `after` overrides the backoff (e.g. a Retry-After header)."""

    def __init__(self, message: str, after: float | None = None) -> None:
        super().__init__(message)
        self.after = after


class Permanent(Exception):
    """Give up: retrying cannot succeed."""


Handler = Callable[[Delivery], None]


class Periodic(NamedTuple):
    """A job the worker runs every `seconds` (once per interval across all workers);
    `seconds` may be a function, asked when the worker starts (a setting).
    LOYALWALLET_PERIODIC_SECONDS_<NAME> (the name in capitals, "-" as "_", e.g.
    LOYALWALLET_PERIODIC_SECONDS_IDEMPOTENCY_EXPIRY=60) sets another interval."""

    name: str
    seconds: float | Callable[[], float]
    run: Callable[[], Any]

    def interval(self) -> float:
        override = env("PERIODIC_SECONDS_" + self.name.upper().replace("-", "_"))
        if override:
            try:
                return max(0.1, float(override))
            except ValueError:
                pass
        return float(self.seconds() if callable(self.seconds) else self.seconds)


# Filled by loyalwallet.wiring.install(): the outbox itself knows no part.
HANDLERS: dict[str, Handler] = {}
PERIODIC: list[Periodic] = []

# Called after every attempt with (topic, outcome, seconds): outcome is "done", "retry"
# or "dead". Filled by wiring.install() (the metrics); an observer must not raise.
Observer = Callable[[str, str, float], None]
OBSERVERS: list[Observer] = []
