"""APNs over HTTP/2: wake the devices that hold a pass so they fetch its new version.

Connections are opened once and kept for the life of the process (Apple throttles
providers that reconnect; an idle connection stays open until APNs closes it, then the
next push reconnects and retries once). Authentication is either a token (an ES256 JWT
from the team's .p8 key, cached and re-signed every 40 minutes: Apple wants between 20
and 60) or the pass certificate itself as the TLS client certificate. For Wallet the
payload is `{}` and the topic is the pass type identifier.

Two faces over the same request/answer logic:
- `Pusher` (blocking) is what the outbox handler uses, one push per outbox row: a
  synchronous httpx HTTP/2 client on one long-lived connection. Measured on the local
  fake it is ~1.8x faster per push than driving the async client from a worker thread
  (bench/pkpass.py). httpcore's synchronous HTTP/2 is not safe for streams from several
  threads at once, so its requests take turns; `Pusher.push_many()` is the concurrent path.
- `ApnsClient` (async) multiplexes many concurrent streams on one connection:
  `push_many()` for fan-out (campaigns) and batches; `Pusher.push_many()` runs it on a
  background event loop.

Settings: LOYALWALLET_APNS_URL (default Apple's production endpoint, which Wallet passes
always use), LOYALWALLET_APNS_CA_FILE (extra CA to trust: tests, a corporate proxy).

Bounded: a process keeps at most LOYALWALLET_APNS_MAX_CONNECTIONS pushers (one per
certificate or key; 32 by default), least recently used closed first, and closes those
idle for LOYALWALLET_APNS_IDLE_SECONDS (600). Merchants with their own certificates
therefore cost at most that many connections per process, however many there are; a
closed one is reopened on its next push. A pusher in use is closed when its last push
ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.util
import os
import ssl
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from loyalwallet.config import env

# httpcore's async side imports sniffio on EVERY request (for each cancellation shield).
# Not installed, a failed import is not cached: each of those imports searched sys.path
# on disk (~20% of the CPU of a push, py-spy). None in sys.modules makes it fail at once;
# httpcore then assumes asyncio, as it did.
if importlib.util.find_spec("sniffio") is None:
    sys.modules.setdefault("sniffio", None)  # type: ignore[arg-type]

APNS_PRODUCTION = "https://api.push.apple.com"
TOKEN_LIFETIME = 40 * 60  # seconds; Apple refuses tokens older than an hour and
# answers TooManyProviderTokenUpdates when they are renewed more often than every 20 min.
PAYLOAD = b"{}"


@dataclass(frozen=True)
class PushResult:
    token: str
    status: int  # 0: no answer (network)
    reason: str | None = None
    apns_id: str | None = None
    timestamp_ms: int | None = None  # for 410: when the token stopped being valid

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def gone(self) -> bool:
        """The device no longer takes pushes for this token: forget its registrations."""
        return self.status == 410 or (self.status == 400 and self.reason == "BadDeviceToken")

    @property
    def retryable(self) -> bool:
        return (
            self.status in (0, 429)
            or self.status >= 500
            or (self.status == 403 and self.reason == "ExpiredProviderToken")
        )


class TokenAuth:
    """The provider token: a JWT signed with the team's APNs key, cached and renewed."""

    def __init__(self, key_pem: bytes | str, key_id: str, team_id: str, lifetime: float = TOKEN_LIFETIME):
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        raw = key_pem.encode() if isinstance(key_pem, str) else key_pem
        self._key = load_pem_private_key(raw, None)
        self.key_id = key_id
        self.team_id = team_id
        self.lifetime = lifetime
        self._token: str | None = None
        self._issued = 0.0
        self._lock = threading.Lock()
        self.fingerprint = hashlib.sha256(raw + key_id.encode() + team_id.encode()).hexdigest()

    def header(self) -> str:
        now = time.time()
        with self._lock:
            if self._token is None or now - self._issued >= self.lifetime:
                self._token = jwt.encode(
                    {"iss": self.team_id, "iat": int(now)},
                    self._key,  # type: ignore[arg-type]  # an APNs key is EC P-256; the loader's type covers every kind
                    algorithm="ES256",
                    headers={"kid": self.key_id},
                )
                self._issued = now
            return f"bearer {self._token}"

    def expire(self) -> None:
        """APNs said the token expired (clock skew): make a new one on the next push."""
        with self._lock:
            self._token = None


def _ssl_context(ca_file: str | None, cert: tuple[str, str] | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    if ca_file:
        ctx.load_verify_locations(cafile=ca_file)
    if cert:
        # The ssl module loads client certificates only from files: write them to a
        # private temporary directory for the moment it takes, then remove them.
        with tempfile.TemporaryDirectory(prefix="lw-apns-") as tmp:
            cert_path, key_path = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
            for path, text in ((cert_path, cert[0]), (key_path, cert[1])):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as fh:
                    fh.write(text)
            ctx.load_cert_chain(cert_path, key_path)
    return ctx


class ApnsClient:
    """Async APNs client with one long-lived, multiplexed HTTP/2 connection pool."""

    def __init__(
        self,
        base_url: str = APNS_PRODUCTION,
        *,
        token_auth: TokenAuth | None = None,
        cert: tuple[str, str] | None = None,
        ca_file: str | None = None,
        timeout: float = 10.0,
        max_connections: int = 2,
    ) -> None:
        if (token_auth is None) == (cert is None):
            raise ValueError("give either token_auth or cert")
        self.base_url = base_url.rstrip("/")
        self.token_auth = token_auth
        self._client = httpx.AsyncClient(
            http1=False,
            http2=True,
            verify=_ssl_context(ca_file, cert),
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=_limits(max_connections),
        )

    async def push(self, token: str, topic: str, payload: bytes = PAYLOAD) -> PushResult:
        url = f"{self.base_url}/3/device/{token}"
        for attempt in range(2):
            try:
                response = await self._client.post(
                    url, content=payload, headers=_headers(self.token_auth, topic)
                )
            except httpx.TransportError as exc:
                if attempt == 0:  # a connection APNs closed: the retry opens a new one
                    continue
                return PushResult(token, 0, f"{type(exc).__name__}: {exc}")
            result = _result(token, response)
            if not _again(result, self.token_auth, attempt):
                return result
        raise AssertionError("unreachable")

    async def push_many(self, items: Iterable[tuple[str, str]], concurrency: int = 256) -> list[PushResult]:
        """Push (token, topic) pairs concurrently as streams of the open connection(s)."""
        gate = asyncio.Semaphore(concurrency)

        async def one(token: str, topic: str) -> PushResult:
            async with gate:
                return await self.push(token, topic)

        return list(await asyncio.gather(*(one(t, p) for t, p in items)))

    async def aclose(self) -> None:
        await self._client.aclose()


def _headers(token_auth: TokenAuth | None, topic: str) -> dict[str, str]:
    headers = {"apns-topic": topic, "content-type": "application/json"}
    if token_auth is not None:
        headers["authorization"] = token_auth.header()
    return headers


def _again(result: PushResult, token_auth: TokenAuth | None, attempt: int) -> bool:
    """APNs found our provider token expired (clock skew): make a new one, try once more."""
    if result.reason == "ExpiredProviderToken" and token_auth is not None and attempt == 0:
        token_auth.expire()
        return True
    return False


def _limits(connections: int) -> httpx.Limits:
    # keepalive_expiry=None: an idle connection stays open until APNs closes it.
    return httpx.Limits(
        max_connections=connections, max_keepalive_connections=connections, keepalive_expiry=None
    )


def _result(token: str, response: httpx.Response) -> PushResult:
    reason = None
    timestamp = None
    if response.status_code != 200 and response.content:
        try:
            body: dict[str, Any] = response.json()
            reason = body.get("reason")
            timestamp = body.get("timestamp")
        except ValueError:
            reason = response.text[:200]
    return PushResult(token, response.status_code, reason, response.headers.get("apns-id"), timestamp)


# --- the synchronous side: one event loop thread for every client of the process --------------

_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _loop_lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="apns-loop", daemon=True).start()
            _loop = loop
        return _loop


class Pusher:
    """The blocking face for the outbox worker: one long-lived HTTP/2 connection."""

    def __init__(
        self,
        base_url: str = APNS_PRODUCTION,
        *,
        token_auth: TokenAuth | None = None,
        cert: tuple[str, str] | None = None,
        ca_file: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        if (token_auth is None) == (cert is None):
            raise ValueError("give either token_auth or cert")
        self.base_url = base_url.rstrip("/")
        self.token_auth = token_auth
        self._args: dict[str, Any] = {
            "token_auth": token_auth,
            "cert": cert,
            "ca_file": ca_file,
            "timeout": timeout,
        }
        self._http = httpx.Client(
            http1=False,
            http2=True,
            verify=_ssl_context(ca_file, cert),
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=_limits(1),
        )
        self._turn = threading.Lock()
        self._bulk: ApnsClient | None = None
        self._users = 0  # pushes under way (guarded by _pushers_lock)
        self._retired = False
        self.last_used = time.monotonic()

    def push(self, token: str, topic: str, payload: bytes = PAYLOAD) -> PushResult:
        url = f"{self.base_url}/3/device/{token}"
        for attempt in range(2):
            try:
                with self._turn:
                    response = self._http.post(url, content=payload, headers=_headers(self.token_auth, topic))
            except httpx.TransportError as exc:
                if attempt == 0:  # a connection APNs closed: the retry opens a new one
                    continue
                return PushResult(token, 0, f"{type(exc).__name__}: {exc}")
            result = _result(token, response)
            if not _again(result, self.token_auth, attempt):
                return result
        raise AssertionError("unreachable")

    def push_many(self, items: Iterable[tuple[str, str]], concurrency: int = 256) -> list[PushResult]:
        """Many pushes at once: concurrent streams of the async client's connection."""
        loop = _background_loop()
        if self._bulk is None:

            async def make() -> ApnsClient:
                return ApnsClient(self.base_url, **self._args)

            self._bulk = asyncio.run_coroutine_threadsafe(make(), loop).result()
        coro = self._bulk.push_many(list(items), concurrency)
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._http.close()
        if self._bulk is not None:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._bulk.aclose(), _background_loop()).result(timeout=5)


_pushers: OrderedDict[tuple[str, ...], Pusher] = OrderedDict()  # least recently used first
_pushers_lock = threading.Lock()


def max_connections() -> int:
    return max(1, int(env("APNS_MAX_CONNECTIONS", "32") or 32))


def idle_seconds() -> float:
    return float(env("APNS_IDLE_SECONDS", "600") or 600)


def base_url() -> str:
    return (env("APNS_URL", APNS_PRODUCTION) or APNS_PRODUCTION).rstrip("/")


def pusher(fingerprint: str, credentials: Callable[[], dict[str, Any]]) -> Pusher:
    """The process's Pusher for the credentials named `fingerprint` (created on first
    use, kept open while used). `credentials()` gives token_auth= or cert= and runs only
    when it is (re)created. Pair with `release()` (or use `using()`)."""
    url, ca_file = base_url(), env("APNS_CA_FILE")
    key = (url, ca_file or "", fingerprint)
    now = time.monotonic()
    retired: list[Pusher] = []
    with _pushers_lock:
        existing = _pushers.get(key)
        if existing is None:
            existing = Pusher(base_url=url, ca_file=ca_file, **credentials())
            _pushers[key] = existing
        _pushers.move_to_end(key)
        existing.last_used = now
        existing._users += 1
        # Over the bound, or idle for long: closed (when no push is under way on them).
        idle = idle_seconds()
        for other_key, other in list(_pushers.items()):
            if other is existing:
                continue
            if len(_pushers) > max_connections() or now - other.last_used > idle:
                del _pushers[other_key]
                other._retired = True
                if other._users == 0:
                    retired.append(other)
    for p in retired:
        p.close()
    return existing


def release(p: Pusher) -> None:
    """A push on `p` is over: close it if it was retired meanwhile."""
    with _pushers_lock:
        p._users -= 1
        p.last_used = time.monotonic()
        close = p._retired and p._users == 0
    if close:
        p.close()


@contextlib.contextmanager
def using(fingerprint: str, credentials: Callable[[], dict[str, Any]]) -> Iterator[Pusher]:
    p = pusher(fingerprint, credentials)
    try:
        yield p
    finally:
        release(p)


def open_count() -> int:
    with _pushers_lock:
        return len(_pushers)


def reset() -> None:
    """Close every client (tests, and after credentials change)."""
    with _pushers_lock:
        items = list(_pushers.values())
        _pushers.clear()
    for p in items:
        p.close()
