"""A local fake of APNs: HTTP/2 over TLS on 127.0.0.1 (the h2 state machine), checking what Apple checks.

- POST /3/device/<hex token>, HTTP/2 only, `apns-topic` required (and equal to `topic`
  when given), body `{}` for Wallet.
- Token auth: `authorization: bearer <ES256 JWT>` verified with the team key's public half
  (`kid` and `iss` must match). Certificate auth: start with `client_ca` and the TLS
  handshake requires a client certificate issued by it.
- Answers 200 with an apns-id, or what the test scripted for a token (`answers`), or
  nothing at all for a token the test silenced (`silence`: a lost answer).
- Announces SETTINGS_MAX_CONCURRENT_STREAMS (`max_streams`, 1000 by default; Apple's
  varies) and enforces it: a client opening more streams at once loses its connection
  (h2 treats it as a protocol error). `answer_delay` holds every answer that long, so
  streams pile up in flight; `peak_streams` is the most seen at once.
- Closes connections as Apple does: `goaway_after(n)` answers n pushes on a connection,
  then sends GOAWAY (last stream id: the last one answered; JSON `{"reason": ...}` as its
  debug data) and closes it: the pushes after it were not processed. `drop_after(n)`
  answers n, then drops the TCP connection without a word.
Records every push and every TCP connection (one long-lived connection is expected).

Also runs as a process for the benchmark: `python tests/fakes/apns.py --port N --dir D`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import re
import ssl
import sys
import threading
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import h2.events
import h2.exceptions
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.settings import SettingCodes

TOKEN_RE = re.compile(r"^[0-9a-fA-F]{32,200}$")


def make_tls_files(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A self-signed certificate for `host` (also the CA file the client trusts)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake apns")])
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(host)), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "apns-cert.pem", directory / "apns-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


class FakeApns:
    def __init__(
        self,
        directory: Path,
        *,
        port: int = 0,
        team_key: Any = None,  # an EC public key: require token auth
        key_id: str | None = None,
        team_id: str | None = None,
        client_ca: Path | None = None,  # require a client certificate issued by this CA
        topic: str | None = None,
        quiet: bool = True,
        host: str = "127.0.0.1",  # another address: a cluster test's hosts reach it there
        max_streams: int = 1000,
        answer_delay: float = 0.0,
    ) -> None:
        self.directory = directory
        self.host = host
        self.cert_file, self.key_file = make_tls_files(directory, host)
        self.port = port
        self.team_key, self.key_id, self.team_id = team_key, key_id, team_id
        self.client_ca = client_ca
        self.topic = topic
        self.quiet = quiet
        self.max_streams = max_streams
        self.answer_delay = answer_delay
        self.peak_streams = 0
        self.silent: dict[str, int] = defaultdict(int)
        self.goaway: tuple[int, str] | None = None  # (after n pushes, reason)
        self.drop: int | None = None
        self.pushes: list[dict[str, Any]] = []
        self.connections: set[tuple[str, int]] = set()
        self.answers: dict[str, list[tuple[int, str | None]]] = defaultdict(list)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._open: set[_Connection] = set()
        self._verified: dict[str, bool] = {}  # provider token (JWT) -> valid

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def ca_file(self) -> str:
        return str(self.cert_file)

    def answer(self, token: str, status: int, reason: str | None = None, times: int = 1) -> None:
        """Script the next `times` answers for a token (then 200 again)."""
        with self._lock:
            self.answers[token] += [(status, reason)] * times

    def silence(self, token: str, times: int = 1) -> None:
        """Take the next `times` pushes to this token and never answer them."""
        with self._lock:
            self.silent[token] += times

    def goaway_after(self, n: int, reason: str = "Shutdown") -> None:
        """From now on, every connection ends with GOAWAY after n answered pushes."""
        self.goaway = (n, reason)

    def drop_after(self, n: int) -> None:
        """The next connection to answer n pushes is dropped then (no GOAWAY, once)."""
        self.drop = n

    def reset(self) -> None:
        with self._lock:
            self.pushes.clear()
            self.connections.clear()
            self.answers.clear()
            self.silent.clear()
            self.peak_streams = 0
            self.goaway = self.drop = None

    def tokens(self) -> list[str]:
        with self._lock:
            return [p["token"] for p in self.pushes]

    # --- the checks: what Apple checks on each push ------------------------------------------

    def _handle(
        self, client: tuple[str, int], http2: bool, headers: dict[str, str], body: bytes
    ) -> tuple[int, str | None]:
        with self._lock:
            self.connections.add(client)
        if not http2:
            return 400, "HTTP2Required"
        if headers.get(":method") != "POST":
            return 405, "MethodNotAllowed"
        path = headers.get(":path", "")
        if not path.startswith("/3/device/"):
            return 404, "BadPath"
        token = path[len("/3/device/") :]
        if not TOKEN_RE.match(token):
            return 400, "BadDeviceToken"
        topic = headers.get("apns-topic")
        if not topic:
            return 400, "MissingTopic"
        if self.topic and topic != self.topic:
            return 400, "BadTopic"
        if self.team_key is not None:
            auth = headers.get("authorization", "")
            if not auth.startswith("bearer "):
                return 403, "MissingProviderToken"
            if not self._provider_token_valid(auth[len("bearer ") :]):
                return 403, "InvalidProviderToken"
        if body and json.loads(body) != {}:
            return 400, "BadPayload"
        with self._lock:
            self.pushes.append({"token": token, "topic": topic, "auth": headers.get("authorization")})
            scripted = self.answers.get(token)
            if scripted:
                return scripted.pop(0)
        return 200, None

    def _provider_token_valid(self, token_jwt: str) -> bool:
        # The same JWT comes with every push for 20-60 minutes: verify each one once
        # (an ES256 verification per push would make the fake, not the client, the limit).
        known = self._verified.get(token_jwt)
        if known is None:
            try:
                head = jwt.get_unverified_header(token_jwt)
                claims = jwt.decode(token_jwt, self.team_key, algorithms=["ES256"])
                known = head.get("kid") == self.key_id and claims.get("iss") == self.team_id
            except jwt.PyJWTError:
                known = False
            self._verified[token_jwt] = known
        return known

    def answer_for(
        self, client: tuple[str, int], http2: bool, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes] | None:
        """(status, headers, body) of the answer, as APNs gives it; None: no answer."""
        status, reason = self._handle(client, http2, headers, body)
        if status == 200:
            token = headers.get(":path", "")[len("/3/device/") :]
            with self._lock:
                if self.silent.get(token):
                    self.silent[token] -= 1
                    return None
        out = [("apns-id", str(uuid.uuid4()))]
        payload = b""
        if status != 200:
            doc: dict[str, Any] = {"reason": reason}
            if status == 410:
                doc["timestamp"] = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
            payload = json.dumps(doc).encode()
            out += [("content-type", "application/json"), ("content-length", str(len(payload)))]
        return status, out, payload

    # --- running: HTTP/2 over TLS straight on the h2 state machine -----------------------------
    # (hypercorn cost ~1.4 ms of CPU per push, its own scheduling and ASGI layers on top of
    # h2: the fake, not the client under test, set the pace of bench/fanout.py.)

    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.cert_file), str(self.key_file))
        ctx.set_alpn_protocols(["h2", "http/1.1"])  # HTTP/1.1 only to answer HTTP2Required
        if self.client_ca is not None:
            ctx.load_verify_locations(cafile=str(self.client_ca))
            ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx

    def start(self) -> FakeApns:
        if not self.port:
            import socket

            with socket.socket() as s:
                s.bind((self.host, 0))
                self.port = s.getsockname()[1]
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            # Clients dropping their connections at shutdown are not the test's business.
            loop.set_exception_handler(lambda _loop, _context: None)
            self._loop = loop
            asyncio.set_event_loop(loop)
            self._stop = asyncio.Event()

            async def main() -> None:
                assert self._stop is not None
                server = await loop.create_server(
                    lambda: _Connection(self), self.host, self.port, ssl=self._ssl_context(), backlog=512
                )
                ready.set()
                await self._stop.wait()
                server.close()
                for conn in list(self._open):
                    conn.transport.close()

            loop.run_until_complete(main())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-apns", daemon=True)
        self._thread.start()
        ready.wait(10)
        _wait_listening(self.port, host=self.host)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=10)


class _Connection(asyncio.Protocol):
    """One client connection: HTTP/2 frames in, APNs answers out (HTTP/1.1: 400 HTTP2Required)."""

    def __init__(self, fake: FakeApns) -> None:
        self.fake = fake
        self.transport: Any = None
        self.client: tuple[str, int] = ("", 0)
        self.h2: H2Connection | None = None
        self.streams: dict[int, tuple[dict[str, str], bytearray]] = {}
        self.http1 = b""
        self.in_flight = 0  # requests received, not answered yet
        self.answered = 0
        self.closing = False  # GOAWAY sent or about to drop: take nothing more

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.client = tuple(transport.get_extra_info("peername")[:2])  # type: ignore[assignment]
        self.fake._open.add(self)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2":
            self.h2 = H2Connection(H2Configuration(client_side=False, header_encoding="utf-8"))
            self.h2.initiate_connection()
            self.h2.update_settings({SettingCodes.MAX_CONCURRENT_STREAMS: self.fake.max_streams})
            transport.write(self.h2.data_to_send())

    def connection_lost(self, exc: Exception | None) -> None:
        self.fake._open.discard(self)

    def data_received(self, data: bytes) -> None:
        if self.h2 is None:
            self._http1(data)
            return
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.transport.write(self.h2.data_to_send())
            self.transport.close()
            return
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                self.streams[event.stream_id] = (dict(event.headers), bytearray())  # type: ignore[arg-type]
            elif isinstance(event, h2.events.DataReceived):
                self.streams[event.stream_id][1].extend(event.data)
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                headers, body = self.streams.pop(event.stream_id)
                if self.closing:
                    continue  # after our GOAWAY: not processed
                self.in_flight += 1
                self.fake.peak_streams = max(self.fake.peak_streams, self.in_flight)
                answer = self.fake.answer_for(self.client, True, headers, bytes(body))
                if answer is None:
                    continue  # silenced: the answer is lost
                if self.fake.answer_delay:
                    assert self.fake._loop is not None
                    self.fake._loop.call_later(self.fake.answer_delay, self._send, event.stream_id, answer)
                else:
                    self._send(event.stream_id, answer, flush=False)
            elif isinstance(event, h2.events.StreamReset):
                self.streams.pop(event.stream_id, None)
            elif isinstance(event, h2.events.ConnectionTerminated):
                self.transport.close()
        if not self.transport.is_closing():
            self.transport.write(self.h2.data_to_send())

    def _send(
        self, stream_id: int, answer: tuple[int, list[tuple[str, str]], bytes], flush: bool = True
    ) -> None:
        assert self.h2 is not None
        if self.transport.is_closing():
            return
        self.in_flight -= 1
        status, out, payload = answer
        self.h2.send_headers(stream_id, [(":status", str(status)), *out], end_stream=not payload)
        if payload:
            self.h2.send_data(stream_id, payload, end_stream=True)
        self.answered += 1
        goaway, drop = self.fake.goaway, self.fake.drop
        if goaway is not None and self.answered >= goaway[0] and not self.closing:
            self.closing = True
            self.h2.close_connection(
                last_stream_id=stream_id, additional_data=json.dumps({"reason": goaway[1]}).encode()
            )
            self.transport.write(self.h2.data_to_send())
            self.transport.close()
        elif drop is not None and self.answered >= drop and not self.closing:
            self.closing = True
            self.fake.drop = None
            self.transport.write(self.h2.data_to_send())
            self.transport.abort()
        elif flush:
            self.transport.write(self.h2.data_to_send())

    def _http1(self, data: bytes) -> None:
        self.http1 += data
        if b"\r\n\r\n" not in self.http1:
            return
        answer = self.fake.answer_for(self.client, False, {}, b"")
        assert answer is not None
        status, _, payload = answer
        self.transport.write(
            f"HTTP/1.1 {status} Bad Request\r\ncontent-type: application/json\r\n"
            f"content-length: {len(payload)}\r\nconnection: close\r\n\r\n".encode()
            + payload
        )
        self.transport.close()


def _wait_listening(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    import socket
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.02)
    raise RuntimeError(f"fake APNs did not start on port {port}")


def main() -> None:  # pragma: no cover - the benchmark runs it as a process
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args()
    fake = FakeApns(args.dir, port=args.port).start()
    print("ready", fake.url, flush=True)
    try:
        sys.stdin.read()  # until the parent closes our stdin
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
