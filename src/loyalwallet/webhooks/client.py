"""The HTTP client that posts signed webhook deliveries (httpx, bounded timeouts)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import httpx

from loyalwallet import __version__
from loyalwallet.config import env
from loyalwallet.webhooks import guard
from loyalwallet.webhooks.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

_client: httpx.Client | None = None
_lock = threading.Lock()


def timeout_seconds() -> float:
    return float(env("WEBHOOK_TIMEOUT_SECONDS", "10") or 10)


def client() -> httpx.Client:
    """One pooled client per process, shared by the worker threads. Every connection is
    checked by the SSRF guard; no redirects, no proxies from the environment."""
    global _client
    with _lock:
        if _client is None:
            _client = httpx.Client(
                timeout=httpx.Timeout(timeout_seconds(), connect=min(5.0, timeout_seconds())),
                follow_redirects=False,
                trust_env=False,
                headers={"User-Agent": f"loyalwallet-webhooks/{__version__}"},
                transport=guard.transport(max_connections=50, max_keepalive=20),
            )
        return _client


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: no HTTP answer (timeout, refused, TLS...)
    error: str | None
    retry_after: float | None = None
    # The SSRF guard refused the address: retrying cannot help.
    refused: bool = False

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return min(3600.0, max(1.0, float(value)))
    except ValueError:
        return None


def post(
    url: str,
    secret: str,
    body: bytes,
    *,
    event: str,
    delivery_id: int,
    attempt: int,
    now: float | None = None,
) -> Answer:
    timestamp = int(now if now is not None else time.time())
    headers = {
        "Content-Type": "application/json",
        "Loyalwallet-Event": event,
        "Loyalwallet-Delivery": str(delivery_id),
        "Loyalwallet-Attempt": str(attempt),
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, timestamp, body),
    }
    try:
        response = client().post(
            url,
            content=body,
            headers=headers,
            timeout=httpx.Timeout(timeout_seconds(), connect=min(5.0, timeout_seconds())),
        )
    except guard.Refused as exc:
        return Answer(None, f"refused: {exc.reason}"[:300], refused=True)
    except httpx.TimeoutException as exc:
        return Answer(None, f"timeout: {type(exc).__name__}")
    except httpx.HTTPError as exc:
        return Answer(None, f"{type(exc).__name__}: {exc}"[:300])
    if 200 <= response.status_code < 300:
        return Answer(response.status_code, None)
    snippet = response.text[:200] if response.content else ""
    return Answer(
        response.status_code,
        f"HTTP {response.status_code} {snippet}".strip(),
        _retry_after(response.headers.get("retry-after")),
    )
