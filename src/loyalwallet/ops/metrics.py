"""Prometheus metrics: what each process counts (requests, purchases, deliveries) and what
the database says at scrape time (outbox depth and age, dead rows, worker heartbeats).

Counters of `serve --workers N`: each server process writes its own files under
PROMETHEUS_MULTIPROC_DIR (set by `loyalwallet serve` before it starts the processes) and
/metrics adds them up, so any process answering the scrape reports the whole host. The
database figures are the same from every host: scrape any one app host for them (see
docs/observability.md).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from loyalwallet import db
from loyalwallet.config import env
from loyalwallet.ops.logs import bind_request, unbind_request

log = logging.getLogger("loyalwallet.http")
# A request slower than this is logged (with its request id); 0 logs every request.
SLOW_SECONDS = float(env("SLOW_REQUEST_SECONDS", "2") or 2)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

REQUESTS = Histogram(
    "loyalwallet_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template, method and status class.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
PURCHASES = Counter(
    "loyalwallet_purchases",
    "POST /api/v1/purchases answers: created, replayed (an Idempotency-Key seen before), refused (4xx/5xx).",
    ["outcome"],
)
FAST_FALLBACKS = Counter(
    "loyalwallet_fast_path_fallbacks",
    "Purchases and quotes the fast path (checkout.fast) handed to the general path, by the place"
    " in the code that sent them (file:line): what the fast path does not cover yet.",
    ["place"],
)
DELIVERIES = Counter(
    "loyalwallet_outbox_deliveries",
    "Outbox delivery attempts by topic, provider (apns, google, sms, telegram, webhook, internal) and outcome.",
    ["topic", "provider", "outcome"],
)
DELIVERY_SECONDS = Histogram(
    "loyalwallet_outbox_delivery_seconds",
    "Time one outbox delivery attempt took, by provider.",
    ["provider"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)


def provider(topic: str) -> str:
    """The outside service a topic talks to."""
    if topic == "apple.push":
        return "apns"
    if topic.startswith("google."):
        return "google"
    if topic.startswith("sms"):
        return "sms"
    if "telegram" in topic or topic in ("tgcard.send", "tgcard.campaign"):
        return "telegram"
    if topic.startswith("webhook"):
        return "webhook"
    return "internal"


def observe_delivery(topic: str, outcome: str, seconds: float) -> None:
    """outbox.handlers.OBSERVERS entry (wired in wiring.install)."""
    name = provider(topic)
    DELIVERIES.labels(topic, name, outcome).inc()
    DELIVERY_SECONDS.labels(name).observe(seconds)


def _route_template(scope: dict[str, Any]) -> str:
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(path) if path else "unmatched"


# (metric, labels) -> its child: `labels()` takes a lock and checks the names on every
# call (a share of each request's CPU); the series are bounded (route templates).
_children: dict[tuple[Any, ...], Any] = {}


def _child(metric: Any, *labels: str) -> Any:
    key = (metric, *labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


ASGIApp = Callable[
    [dict[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]
]


class MetricsMiddleware:
    """Times every HTTP request by its route template (`/api/v1/cards/{code}`, never the
    raw path, so the number of series stays bounded) and binds the request for the logs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = bind_request(scope)
        started = time.perf_counter()
        status = 500
        replayed = False

        async def send_wrapper(message: dict[str, Any]) -> None:
            nonlocal status, replayed
            if message["type"] == "http.response.start":
                status = int(message["status"])
                for name, _ in message.get("headers", ()):
                    if name.lower() == b"idempotent-replayed":
                        replayed = True
                        break
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = _route_template(scope)
            method = scope.get("method", "GET")
            seconds = time.perf_counter() - started
            _child(REQUESTS, method, route, f"{status // 100}xx").observe(seconds)
            if seconds >= SLOW_SECONDS:
                log.warning(
                    "slow request %s %s (%s) %s in %.3f s", method, scope.get("path"), route, status, seconds
                )
            # By the path too: a purchase answered by the fast path's own route has no template.
            if method == "POST" and "/api/v1/purchases" in (route, scope.get("path")):
                outcome = "replayed" if replayed else "created" if status < 300 else "refused"
                _child(PURCHASES, outcome).inc()
            unbind_request(token)


# --- what the database says, at scrape time -------------------------------------------------

# A worker whose last heartbeat is older than this counts as gone.
ALIVE_SECONDS = 60.0


class DatabaseCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        from loyalwallet.outbox.models import OutboxMessage, WorkerHeartbeat

        now = db.utcnow()
        pending = GaugeMetricFamily(
            "loyalwallet_outbox_pending", "Outbox rows waiting for delivery, by topic.", labels=["topic"]
        )
        oldest = GaugeMetricFamily(
            "loyalwallet_outbox_oldest_pending_age_seconds",
            "Age of the oldest undelivered outbox row, by topic.",
            labels=["topic"],
        )
        dead = GaugeMetricFamily(
            "loyalwallet_outbox_dead",
            "Outbox rows given up on (see /admin/deliveries), by topic.",
            labels=["topic"],
        )
        beats = GaugeMetricFamily(
            "loyalwallet_worker_heartbeat_age_seconds",
            "Seconds since each outbox worker loop last said it was alive.",
            labels=["worker", "kind"],
        )
        alive = GaugeMetricFamily(
            "loyalwallet_workers_alive", f"Worker loops heard from in the last {ALIVE_SECONDS:.0f} s."
        )
        up = GaugeMetricFamily("loyalwallet_database_up", "1 when the database answered this scrape.")
        try:
            with db.read() as session:
                rows = session.execute(
                    select(
                        OutboxMessage.topic,
                        OutboxMessage.status,
                        func.count(),
                        func.min(OutboxMessage.created_at),
                    )
                    .where(OutboxMessage.status.in_(("pending", "dead")))
                    .group_by(OutboxMessage.topic, OutboxMessage.status)
                ).all()
                workers = session.execute(
                    select(WorkerHeartbeat.name, WorkerHeartbeat.kind, WorkerHeartbeat.beat_at)
                ).all()
        except Exception:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        for topic, status, count, first in rows:
            if status == "pending":
                pending.add_metric([topic], count)
                oldest.add_metric([topic], max(0.0, (now - _utc(first)).total_seconds()))
            else:
                dead.add_metric([topic], count)
        n_alive = 0
        for name, kind, beat_at in workers:
            age = max(0.0, (now - _utc(beat_at)).total_seconds())
            beats.add_metric([name, kind], age)
            n_alive += age <= ALIVE_SECONDS
        alive.add_metric([], n_alive)
        yield from (up, pending, oldest, dead, beats, alive)


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


_database_registry = CollectorRegistry(auto_describe=False)
_database_registry.register(DatabaseCollector())


def exposition() -> bytes:
    """The text /metrics answers: this host's process counters plus the database's figures."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        local = generate_latest(registry)
    else:
        from prometheus_client import REGISTRY

        local = generate_latest(REGISTRY)
    return local + generate_latest(_database_registry)
