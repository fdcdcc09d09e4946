"""Handlers made of listeners: one outbox row heard by several parts.

`each(listeners)`: every listener in turn; a failure retries the whole row (used for
card.changed, whose listeners de-duplicate their own work).
`independently(listeners)`: business events (`emit_event`); when some listeners fail and
others succeed, only the failed ones are tried again, in a follow-up row carrying the
same event id. Retrying the whole row would repeat what already succeeded (a webhook
fan-out twice over).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from typing import Any

from loyalwallet import db
from loyalwallet.outbox.handlers import Delivery, Handler, Permanent, Retry
from loyalwallet.outbox.service import enqueue
from loyalwallet.outbox.worker import backoff

log = logging.getLogger("loyalwallet.worker")


def each(listeners: Sequence[Handler]) -> Handler:
    def handle(msg: Delivery) -> None:
        for listener in listeners:
            listener(msg)

    return handle


def event_id(msg: Delivery) -> int:
    """The stable id of a business event: the id of the row `emit_event` wrote, kept by
    follow-up rows, so receivers can de-duplicate on it."""
    return int(msg.payload.get("event_id") or msg.id)


def listener_name(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}.{getattr(fn, '__qualname__', repr(fn))}"


def independently(listeners: Sequence[Handler]) -> Handler:
    def handle(msg: Delivery) -> None:
        only = msg.payload.get("listeners")
        to_run = [fn for fn in listeners if only is None or listener_name(fn) in only]
        failed: list[str] = []
        errors: list[str] = []
        for listener in to_run:
            try:
                listener(msg)
            except Permanent as exc:
                log.warning("event %s: listener %s gave up: %s", event_id(msg), listener_name(listener), exc)
            except Exception as exc:
                log.warning("event %s: listener %s failed: %r", event_id(msg), listener_name(listener), exc)
                failed.append(listener_name(listener))
                errors.append(f"{listener_name(listener)}: {type(exc).__name__}: {exc}")
        if not failed:
            return
        if len(failed) == len(to_run):
            raise Retry("; ".join(errors))  # nothing succeeded: retry this very row
        left = msg.max_attempts - msg.attempts
        if left <= 0:
            raise Permanent("; ".join(errors))
        with db.transaction() as session:
            enqueue(
                session,
                msg.merchant_id,
                "event",
                {**msg.payload, "event_id": event_id(msg), "listeners": failed},
                delay=dt.timedelta(seconds=backoff(msg.attempts)),
                max_attempts=left,
            )

    return handle
