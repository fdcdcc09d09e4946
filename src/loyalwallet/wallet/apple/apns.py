"""APNs over HTTP/2: wake the devices that hold a pass so they fetch its new version.

Connections are opened once and kept for the life of the process (Apple throttles
providers that reconnect; an idle connection stays open until APNs closes it, then the
next push reconnects and retries once). Authentication is either a token (an ES256 JWT
from the team's .p8 key, cached and re-signed every 40 minutes: Apple wants between 20
and 60) or the pass certificate itself as the TLS client certificate. For Wallet the
payload is `{}` and the topic is the pass type identifier.

The client is our own, on the `h2` state machine over an asyncio TLS connection (httpx
cost 1.2-2 ms of CPU per push, more per stream the more were in flight: bench/RESULTS.md,
issue 14). Per credential, one connection carries every push as a stream, as many at once
as APNs's SETTINGS_MAX_CONCURRENT_STREAMS allows (the rest wait in a queue), within its
flow-control windows. A push unanswered for `timeout` seconds, or whose connection was
lost, is sent once more; after a GOAWAY the pushes APNs says it did not process go on a
new connection. 403 ExpiredProviderToken re-signs the token and sends the push again once.

Two faces over it:
- `Pusher` (blocking) is what the outbox handler uses: `push()` for a row of one token,
  `push_many()` for a batch row (campaigns). Both hand their pushes to the process's
  APNs event loop thread and wait once for the whole batch, so the bulk threads' batches
  share one connection.
- `ApnsClient` (async) does the same on the caller's event loop.

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
import json
import os
import ssl
import tempfile
import threading
import time
import urllib.parse
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import h2.events
import h2.exceptions
import jwt
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes

from loyalwallet.config import env

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
    ctx.set_alpn_protocols(["h2"])  # APNs speaks HTTP/2 only
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


# --- the HTTP/2 client: h2's state machine over one asyncio TLS connection per credential --------
# httpx/httpcore cost 1.2-2 ms of CPU per push and more per stream the more streams were in
# flight (bench/RESULTS.md, issue 14): a task, a lock and an event list per request, and
# h2's own count of open streams, which walks every stream it knows each time one opens.
# Here a batch is a list of small objects on a queue; frames for all of it go out in one
# write, answers are matched by stream id, and the caller is woken once per batch.

_H2_CONFIG = H2Configuration(
    client_side=True,
    header_encoding=None,
    # We build the headers ourselves (lower-case, no connection-specific ones) and trust
    # Apple's: h2's per-header checks cost more than the rest of a request.
    validate_outbound_headers=False,
    normalize_outbound_headers=False,
    validate_inbound_headers=False,
    normalize_inbound_headers=False,
)
_SAFE_TOKEN = frozenset("0123456789abcdefABCDEF")


class _H2(H2Connection):
    """h2 (pinned) counts the open streams by walking all the streams it knows each time a
    stream opens: O(streams in flight) per push. `_Conn` counts them as they open and end,
    and drops ended streams itself, as h2's walk would."""

    def __init__(self) -> None:
        super().__init__(_H2_CONFIG)
        self.outbound_open = 0

    @property
    def open_outbound_streams(self) -> int:
        return self.outbound_open

    def forget(self, stream_id: int) -> None:
        stream = self.streams.get(stream_id)
        if stream is None:
            return
        if not stream.closed:  # the answer came before our body went out: cancel the rest
            with contextlib.suppress(h2.exceptions.H2Error):
                self.reset_stream(stream_id, ErrorCodes.CANCEL)
        del self.streams[stream_id]
        self._closed_streams[stream_id] = stream.closed_by
        self.outbound_open -= 1


class _Batch:
    """The pushes of one push()/push_many() call: results by position, one wake-up."""

    __slots__ = ("left", "notify", "results")

    def __init__(self, size: int, notify: Callable[[], None]) -> None:
        self.results: list[PushResult | None] = [None] * size
        self.left = size
        self.notify = notify

    def finish(self, index: int, result: PushResult) -> None:
        if self.results[index] is None:
            self.results[index] = result
            self.left -= 1
            if self.left == 0:
                self.notify()


class _Push:
    __slots__ = (
        "apns_id",
        "batch",
        "body",
        "failures",
        "index",
        "moved",
        "payload",
        "queued_at",
        "renewed",
        "sent_at",
        "status",
        "token",
        "topic",
    )

    def __init__(self, batch: _Batch, index: int, token: str, topic: str, payload: bytes, now: float) -> None:
        self.batch, self.index = batch, index
        self.token, self.topic, self.payload = token, topic, payload
        self.queued_at = self.sent_at = now
        self.failures = 0  # attempts without an answer (connection lost, timeout): 2 at most
        self.moved = 0  # sent again after a GOAWAY that said it was not processed
        self.renewed = False  # sent again with a new provider token
        self.status = 0
        self.apns_id: bytes | None = None
        self.body = b""

    def fail(self, reason: str) -> None:
        self.batch.finish(self.index, PushResult(self.token, 0, reason))


class _Mux:
    """One credential's pushes: a queue, and the connection they are multiplexed on.
    Runs on one event loop; other threads reach it through call_soon_threadsafe."""

    def __init__(
        self, base_url: str, token_auth: TokenAuth | None, ssl_context: ssl.SSLContext, timeout: float
    ) -> None:
        parsed = urllib.parse.urlsplit(base_url)
        self.host = parsed.hostname or ""
        self.port = parsed.port or 443
        self.authority = parsed.netloc.encode()
        self.token_auth = token_auth
        self.ssl_context = ssl_context
        self.timeout = timeout
        self.connect_timeout = min(timeout, 10.0)
        self.queue: deque[_Push] = deque()
        self.conn: _Conn | None = None
        self.connecting = False
        self.closed = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self.progress_at = 0.0  # the last answer, or connection made
        self.ticking = False
        self._bearer: tuple[str, bytes] = ("", b"")
        self._topics: dict[str, bytes] = {}
        self.connections = 0  # connections opened (tests, benchmarks)

    # -- called on the loop ------------------------------------------------------------------

    def submit(self, batch: _Batch, items: list[tuple[str, str]], payload: bytes) -> None:
        loop = asyncio.get_running_loop()
        if self.loop is not loop:  # first use, or a new process's loop after fork
            self.loop, self.conn, self.connecting = loop, None, False
        now = loop.time()
        if self.closed:
            for i, (token, _) in enumerate(items):
                batch.finish(i, PushResult(token, 0, "client closed"))
            return
        self.queue.extend(_Push(batch, i, t, p, payload, now) for i, (t, p) in enumerate(items))
        self.pump()
        self._tick_later()

    def pump(self) -> None:
        """Put queued pushes on the connection (opening one when there is none)."""
        if not self.queue:
            return
        conn = self.conn
        if conn is None or not conn.usable:
            if not self.connecting and not self.closed:
                self.connecting = True
                assert self.loop is not None
                self.loop.create_task(self._connect())
            return
        conn.send(self.queue)

    def headers(self, push: _Push) -> list[tuple[bytes, bytes]]:
        token = push.token if _SAFE_TOKEN.issuperset(push.token) else urllib.parse.quote(push.token, safe="")
        topic = self._topics.get(push.topic)
        if topic is None:
            topic = self._topics[push.topic] = push.topic.encode()
        headers = [
            (b":method", b"POST"),
            (b":scheme", b"https"),
            (b":authority", self.authority),
            (b":path", b"/3/device/" + token.encode()),
            (b"apns-topic", topic),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(push.payload)).encode()),
        ]
        if self.token_auth is not None:
            bearer = self.token_auth.header()  # the same string for 40 minutes
            if bearer != self._bearer[0]:
                self._bearer = (bearer, bearer.encode())
            headers.append((b"authorization", self._bearer[1]))
        return headers

    def answered(self, push: _Push) -> None:
        assert self.loop is not None
        self.progress_at = self.loop.time()
        result = _answer(push)
        if result.reason == "ExpiredProviderToken" and self.token_auth is not None and not push.renewed:
            # APNs found our provider token expired (clock skew): a new one, once more.
            self.token_auth.expire()
            push.renewed = True
            self.queue.append(push)
            return
        push.batch.finish(push.index, result)

    def unanswered(self, push: _Push, reason: str) -> None:
        """No answer for this push (connection lost, timeout): tried again once."""
        push.failures += 1
        if push.failures >= 2:
            push.fail(reason)
        else:
            self.queue.appendleft(push)

    def not_processed(self, push: _Push, reason: str) -> None:
        """APNs said (GOAWAY) it did not process this push: send it on the next connection."""
        push.moved += 1
        if push.moved > 5:
            push.fail(reason)
        else:
            self.queue.appendleft(push)

    def lost(self, conn: _Conn) -> None:
        if self.conn is conn:
            self.conn = None
        self.pump()

    async def _connect(self) -> None:
        assert self.loop is not None
        loop = self.loop
        conn: _Conn | None = None
        try:
            _, made = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Conn(self),
                    self.host,
                    self.port,
                    ssl=self.ssl_context,
                    server_hostname=self.host,
                ),
                self.connect_timeout,
            )
            conn = made
            conn.check_alpn()
            # Wait for APNs's SETTINGS: how many streams it takes at once.
            await asyncio.wait_for(conn.ready, self.connect_timeout)
        except (OSError, TimeoutError, ConnectionError) as exc:
            if conn is not None:
                conn.close()
            self.connecting = False
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            queue, self.queue = self.queue, deque()
            for push in queue:  # a failed connection counts as an attempt of each push
                push.failures += 1
                if push.failures >= 2:
                    push.fail(reason)
                else:
                    self.queue.append(push)
            self.pump()
            return
        self.connecting = False
        assert conn is not None
        if self.closed:
            conn.close()
            return
        self.conn = conn
        self.connections += 1
        self.progress_at = loop.time()
        self.pump()

    def _tick_later(self) -> None:
        if not self.ticking and self.loop is not None:
            self.ticking = True
            self.loop.call_later(min(1.0, self.timeout / 4), self._tick)

    def _tick(self) -> None:
        """Timeouts: a push unanswered for `timeout`, pushes queued that long without any
        progress; a connection silent while pushes waited on it is taken as dead."""
        self.ticking = False
        assert self.loop is not None
        now = self.loop.time()
        conn = self.conn
        if conn is not None:
            conn.expire(now - self.timeout)
        if self.queue and not self.connecting:
            stale = now - self.timeout
            if max(self.progress_at, self.queue[0].queued_at) < stale:
                queue, self.queue = self.queue, deque()
                for push in queue:
                    if max(self.progress_at, push.queued_at) < stale:
                        push.fail("PoolTimeout")
                    else:
                        self.queue.append(push)
        if self.queue or (conn is not None and conn.streams):
            self._tick_later()

    def close(self) -> None:
        self.closed = True
        for push in self.queue:
            push.fail("client closed")
        self.queue.clear()
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def _answer(push: _Push) -> PushResult:
    reason = None
    timestamp = None
    if push.status != 200 and push.body:
        try:
            body = json.loads(push.body)
            reason = body.get("reason")
            timestamp = body.get("timestamp")
        except (ValueError, AttributeError):
            reason = push.body[:200].decode(errors="replace")
    apns_id = push.apns_id.decode() if push.apns_id is not None else None
    return PushResult(push.token, push.status, reason, apns_id, timestamp)


class _Conn(asyncio.Protocol):
    """One HTTP/2 connection to APNs."""

    def __init__(self, mux: _Mux) -> None:
        self.mux = mux
        self.h2 = _H2()
        self.streams: dict[int, _Push] = {}
        self.blocked: deque[int] = deque()  # streams whose body waits for flow-control window
        self.transport: asyncio.Transport | None = None
        assert mux.loop is not None
        self.ready: asyncio.Future[None] = mux.loop.create_future()
        self.usable = False
        self.ended = False  # GOAWAY received or connection lost
        self.abort_reason: str | None = None
        self.last_read = mux.loop.time()

    def check_alpn(self) -> None:
        assert self.transport is not None
        ssl_object = self.transport.get_extra_info("ssl_object")
        if ssl_object is None or ssl_object.selected_alpn_protocol() != "h2":
            self.close()
            raise ConnectionError("APNs did not agree on HTTP/2")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.h2.initiate_connection()
        transport.write(self.h2.data_to_send())

    def connection_lost(self, exc: Exception | None) -> None:
        self.usable = False
        self.ended = True
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"connection lost: {exc}"))
            self.ready.exception()  # retrieved: no "never retrieved" warning
        reason = self.abort_reason or (f"connection lost: {exc}" if exc else "connection closed")
        streams, self.streams = self.streams, {}
        self.blocked.clear()
        for _, push in sorted(streams.items(), reverse=True):  # appended left: in order again
            self.mux.unanswered(push, reason)
        self.mux.lost(self)

    def data_received(self, data: bytes) -> None:
        if self.ended:
            return
        mux = self.mux
        assert mux.loop is not None
        self.last_read = mux.loop.time()
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self._flush()
            self.abort(f"HTTP/2 protocol error: {exc}")
            return
        streams = self.streams
        for event in events:
            kind = type(event)
            if kind is h2.events.ResponseReceived:
                push = streams.get(event.stream_id)  # type: ignore[attr-defined]
                if push is not None:
                    for name, value in event.headers:  # type: ignore[attr-defined]
                        if name == b":status":
                            push.status = int(value)
                        elif name == b"apns-id":
                            push.apns_id = value
            elif kind is h2.events.DataReceived:
                sid = event.stream_id  # type: ignore[attr-defined]
                push = streams.get(sid)
                if push is not None:
                    push.body += event.data  # type: ignore[attr-defined]
                self.h2.acknowledge_received_data(event.flow_controlled_length, sid)  # type: ignore[attr-defined]
            elif kind is h2.events.StreamEnded:
                sid = event.stream_id  # type: ignore[attr-defined]
                push = streams.pop(sid, None)
                self.h2.forget(sid)
                if push is not None:
                    mux.answered(push)
            elif kind is h2.events.StreamReset:
                sid = event.stream_id  # type: ignore[attr-defined]
                push = streams.pop(sid, None)
                self.h2.forget(sid)
                if push is not None:
                    if event.error_code == ErrorCodes.REFUSED_STREAM:  # type: ignore[attr-defined]
                        mux.not_processed(push, "stream refused")
                    else:
                        mux.unanswered(push, f"stream reset: {event.error_code!r}")  # type: ignore[attr-defined]
            elif kind is h2.events.RemoteSettingsChanged:
                if not self.ready.done():
                    self.usable = True
                    self.ready.set_result(None)
            elif kind is h2.events.ConnectionTerminated:
                self._goaway(event)  # type: ignore[arg-type]
                break
            # WindowUpdated, SettingsAcknowledged, PingReceived (answered by h2): below.
        if self.blocked:
            self._send_blocked()
        if self.usable:
            mux.pump()  # streams that ended make room for queued pushes
        self._flush()
        if self.ended and self.transport is not None:
            self.transport.close()

    def _goaway(self, event: h2.events.ConnectionTerminated) -> None:
        """APNs closes the connection: pushes it did not process go on a new connection;
        those it took and did not answer yet are lost with it (tried again once)."""
        self.usable = False
        self.ended = True
        last = event.last_stream_id or 0
        reason = "GOAWAY"
        if event.additional_data:
            with contextlib.suppress(ValueError, AttributeError):
                reason = f"GOAWAY {json.loads(event.additional_data).get('reason')}"
        streams, self.streams = self.streams, {}
        self.blocked.clear()
        for sid, push in sorted(streams.items(), reverse=True):
            if sid > last:
                self.mux.not_processed(push, reason)
            else:
                self.mux.unanswered(push, reason)
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(reason))
            self.ready.exception()
        self.mux.lost(self)

    def send(self, queue: deque[_Push]) -> None:
        """Open streams for queued pushes, as many as APNs takes at once."""
        h2c, mux = self.h2, self.mux
        limit = h2c.remote_settings.max_concurrent_streams
        assert mux.loop is not None
        now = mux.loop.time()
        while queue and h2c.outbound_open < limit and self.usable:
            push = queue.popleft()
            try:
                sid = h2c.get_next_available_stream_id()
                h2c.send_headers(sid, mux.headers(push))
            except h2.exceptions.H2Error as exc:  # the connection's state refuses new streams
                queue.appendleft(push)
                self.abort(f"HTTP/2: {exc}")
                return
            h2c.outbound_open += 1
            self.streams[sid] = push
            push.sent_at = now
            if self.blocked or h2c.local_flow_control_window(sid) < len(push.payload):
                self.blocked.append(sid)
            else:
                h2c.send_data(sid, push.payload, end_stream=True)
        self._flush()

    def _send_blocked(self) -> None:
        h2c = self.h2
        while self.blocked:
            sid = self.blocked[0]
            push = self.streams.get(sid)
            if push is None:
                self.blocked.popleft()
                continue
            if h2c.local_flow_control_window(sid) < len(push.payload):
                return
            h2c.send_data(sid, push.payload, end_stream=True)
            self.blocked.popleft()

    def expire(self, sent_before: float) -> None:
        late = [(sid, p) for sid, p in self.streams.items() if p.sent_at < sent_before]
        if not late:
            return
        if self.last_read < min(p.sent_at for _, p in late):
            # Not a byte from APNs since: the connection is dead (the network dropped it).
            self.abort("ReadTimeout")
            return
        for sid, push in late:
            del self.streams[sid]
            self.h2.forget(sid)
            self.mux.unanswered(push, "ReadTimeout")
        self._flush()
        self.mux.pump()

    def abort(self, reason: str) -> None:
        self.abort_reason = reason
        self.usable = False
        self.ended = True  # nothing more goes through h2 here: connection_lost follows
        if self.transport is not None:
            self.transport.abort()  # connection_lost follows: its streams are tried again

    def close(self) -> None:
        self.usable = False
        if self.transport is not None and not self.transport.is_closing():
            with contextlib.suppress(h2.exceptions.H2Error):
                self.h2.close_connection()
                self._flush()
            self.transport.close()

    def _flush(self) -> None:
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)


# --- the faces: async (on the caller's loop) and blocking (on one background loop) -------------


class ApnsClient:
    """Async APNs client: one long-lived HTTP/2 connection, many streams on it."""

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
        self._mux = _Mux(self.base_url, token_auth, _ssl_context(ca_file, cert), timeout)

    async def push(self, token: str, topic: str, payload: bytes = PAYLOAD) -> PushResult:
        return (await self._run([(token, topic)], payload))[0]

    async def push_many(self, items: Iterable[tuple[str, str]], concurrency: int = 256) -> list[PushResult]:
        """Push (token, topic) pairs concurrently as streams of the connection (as many at
        once as APNs allows; `concurrency` is kept for callers and not needed)."""
        return await self._run(list(items), PAYLOAD)

    async def _run(self, items: list[tuple[str, str]], payload: bytes) -> list[PushResult]:
        if not items:
            return []
        done = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not done.done():
                done.set_result(None)

        batch = _Batch(len(items), wake)
        self._mux.submit(batch, items, payload)
        await done
        return batch.results  # type: ignore[return-value]  # every slot is filled when done

    async def aclose(self) -> None:
        self._mux.close()


_loop: asyncio.AbstractEventLoop | None = None
_loop_pid = 0
_loop_lock = threading.Lock()


def _background_loop() -> asyncio.AbstractEventLoop:
    """The process's event loop thread for every Pusher (a new one in a forked child)."""
    global _loop, _loop_pid
    with _loop_lock:
        if _loop is None or _loop.is_closed() or _loop_pid != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="apns-loop", daemon=True).start()
            _loop, _loop_pid = loop, os.getpid()
        return _loop


class Pusher:
    """The blocking face for the outbox worker: its pushes, from any thread, are streams
    of one long-lived HTTP/2 connection run by the process's APNs event loop thread."""

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
        self.timeout = timeout
        self._mux = _Mux(self.base_url, token_auth, _ssl_context(ca_file, cert), timeout)
        self._users = 0  # pushes under way (guarded by _pushers_lock)
        self._retired = False
        self.last_used = time.monotonic()

    def push(self, token: str, topic: str, payload: bytes = PAYLOAD) -> PushResult:
        return self._run([(token, topic)], payload)[0]

    def push_many(self, items: Iterable[tuple[str, str]], concurrency: int = 256) -> list[PushResult]:
        """Many pushes at once: concurrent streams of the connection (as many at once as
        APNs allows; `concurrency` is kept for callers and not needed)."""
        return self._run(list(items), PAYLOAD)

    def _run(self, items: list[tuple[str, str]], payload: bytes) -> list[PushResult]:
        if not items:
            return []
        done = threading.Event()
        batch = _Batch(len(items), done.set)
        _background_loop().call_soon_threadsafe(self._mux.submit, batch, items, payload)
        # The loop answers every push within its timeouts (2 attempts, connecting
        # included); the bound here only guards against a loop that died.
        if not done.wait(4 * (self.timeout + self._mux.connect_timeout) + 30):
            return [
                r or PushResult(t, 0, "no answer") for r, (t, _) in zip(batch.results, items, strict=True)
            ]
        return batch.results  # type: ignore[return-value]  # every slot is filled when done

    @property
    def is_closed(self) -> bool:
        return self._mux.closed

    @property
    def connections(self) -> int:
        """Connections opened so far (one while APNs keeps it open)."""
        return self._mux.connections

    def close(self) -> None:
        self._mux.closed = True  # at once: is_closed, and no new connection
        loop = _loop
        if loop is not None and not loop.is_closed() and _loop_pid == os.getpid():
            loop.call_soon_threadsafe(self._mux.close)


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
