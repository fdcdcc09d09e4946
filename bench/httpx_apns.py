"""The standard client's baseline for APNs: httpx (HTTP/2 through httpcore and h2), used as
main's APNs client used it until issue 14 — an AsyncClient on a background event loop
thread, `push_many` as an asyncio.gather of posts (at most `concurrency` at once) on its
pooled connection, and a synchronous httpx.Client for one push at a time. The product's
client (wallet/apple/apns.py) is now our own on h2; the benchmarks compare it with this.

httpcore's async side imports sniffio on every request; not installed, a failed import is
not cached and each searched sys.path (~20 % of a push's CPU). main's client set
sys.modules["sniffio"] = None for that; so does this baseline, so it is the client as main
ran it, not a slower one.
"""

from __future__ import annotations

import asyncio
import importlib.util
import ssl
import sys
import threading
from collections.abc import Iterable
from typing import Any

import httpx

from loyalwallet.wallet.apple.apns import PAYLOAD, PushResult, TokenAuth

if importlib.util.find_spec("sniffio") is None:
    sys.modules.setdefault("sniffio", None)  # type: ignore[arg-type]


def _result(token: str, response: httpx.Response) -> PushResult:
    reason = timestamp = None
    if response.status_code != 200 and response.content:
        body: dict[str, Any] = response.json()
        reason, timestamp = body.get("reason"), body.get("timestamp")
    return PushResult(token, response.status_code, reason, response.headers.get("apns-id"), timestamp)


class HttpxPusher:
    def __init__(
        self,
        base_url: str,
        *,
        token_auth: TokenAuth | None = None,
        ca_file: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token_auth = token_auth
        self._ctx = ssl.create_default_context(cafile=ca_file)
        self._timeout = timeout
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1, keepalive_expiry=None)
        self._sync = httpx.Client(http1=False, http2=True, verify=self._ctx, timeout=timeout, limits=limits)
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, name="httpx-apns-loop", daemon=True).start()

        async def make() -> httpx.AsyncClient:
            return httpx.AsyncClient(
                http1=False,
                http2=True,
                verify=self._ctx,
                timeout=timeout,
                limits=httpx.Limits(max_connections=2, max_keepalive_connections=2, keepalive_expiry=None),
            )

        self._async = asyncio.run_coroutine_threadsafe(make(), self._loop).result()
        self._turn = threading.Lock()

    def _headers(self, topic: str) -> dict[str, str]:
        headers = {"apns-topic": topic, "content-type": "application/json"}
        if self.token_auth is not None:
            headers["authorization"] = self.token_auth.header()
        return headers

    def push(self, token: str, topic: str) -> PushResult:
        with self._turn:  # httpcore's sync HTTP/2 takes one stream at a time
            response = self._sync.post(
                f"{self.base_url}/3/device/{token}", content=PAYLOAD, headers=self._headers(topic)
            )
        return _result(token, response)

    def push_many(self, items: Iterable[tuple[str, str]], concurrency: int = 256) -> list[PushResult]:
        gate = asyncio.Semaphore(concurrency)

        async def one(token: str, topic: str) -> PushResult:
            async with gate:
                response = await self._async.post(
                    f"{self.base_url}/3/device/{token}", content=PAYLOAD, headers=self._headers(topic)
                )
                return _result(token, response)

        async def all_of(pairs: list[tuple[str, str]]) -> list[PushResult]:
            return list(await asyncio.gather(*(one(t, p) for t, p in pairs)))

        return asyncio.run_coroutine_threadsafe(all_of(list(items)), self._loop).result()

    def close(self) -> None:
        self._sync.close()
        asyncio.run_coroutine_threadsafe(self._async.aclose(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
