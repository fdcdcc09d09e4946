"""A local fake of APNs: HTTP/2 over TLS on 127.0.0.1 (hypercorn), checking what Apple checks.

- POST /3/device/<hex token>, HTTP/2 only, `apns-topic` required (and equal to `topic`
  when given), body `{}` for Wallet.
- Token auth: `authorization: bearer <ES256 JWT>` verified with the team key's public half
  (`kid` and `iss` must match). Certificate auth: start with `client_ca` and the TLS
  handshake requires a client certificate issued by it.
- Answers 200 with an apns-id, or what the test scripted for a token (`answers`).
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

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

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
    ) -> None:
        self.directory = directory
        self.host = host
        self.cert_file, self.key_file = make_tls_files(directory, host)
        self.port = port
        self.team_key, self.key_id, self.team_id = team_key, key_id, team_id
        self.client_ca = client_ca
        self.topic = topic
        self.quiet = quiet
        self.pushes: list[dict[str, Any]] = []
        self.connections: set[tuple[str, int]] = set()
        self.answers: dict[str, list[tuple[int, str | None]]] = defaultdict(list)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

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

    def reset(self) -> None:
        with self._lock:
            self.pushes.clear()
            self.connections.clear()
            self.answers.clear()

    def tokens(self) -> list[str]:
        with self._lock:
            return [p["token"] for p in self.pushes]

    # --- the ASGI app ---------------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        status, reason = self._handle(scope, body)
        headers = [(b"apns-id", str(uuid.uuid4()).encode())]
        payload = b""
        if status != 200:
            doc: dict[str, Any] = {"reason": reason}
            if status == 410:
                doc["timestamp"] = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
            payload = json.dumps(doc).encode()
            headers.append((b"content-type", b"application/json"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    def _handle(self, scope: dict[str, Any], body: bytes) -> tuple[int, str | None]:
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        with self._lock:
            self.connections.add(tuple(scope["client"]))
        if scope.get("http_version") != "2":
            return 400, "HTTP2Required"
        if scope["method"] != "POST":
            return 405, "MethodNotAllowed"
        path = scope["path"]
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
            try:
                token_jwt = auth[len("bearer ") :]
                head = jwt.get_unverified_header(token_jwt)
                claims = jwt.decode(token_jwt, self.team_key, algorithms=["ES256"])
            except jwt.PyJWTError:
                return 403, "InvalidProviderToken"
            if head.get("kid") != self.key_id or claims.get("iss") != self.team_id:
                return 403, "InvalidProviderToken"
        if body and json.loads(body) != {}:
            return 400, "BadPayload"
        with self._lock:
            self.pushes.append({"token": token, "topic": topic, "auth": headers.get("authorization")})
            scripted = self.answers.get(token)
            if scripted:
                return scripted.pop(0)
        return 200, None

    # --- running ----------------------------------------------------------------------------

    def _config(self) -> Any:
        from hypercorn.config import Config

        config = Config()
        config.bind = [f"{self.host}:{self.port}"]
        config.certfile = str(self.cert_file)
        config.keyfile = str(self.key_file)
        config.alpn_protocols = ["h2"]
        config.h2_max_concurrent_streams = 1000
        config.keep_alive_timeout = 3600  # APNs keeps idle connections open for hours
        config.keep_alive_max_requests = 10**9
        if self.client_ca is not None:
            config.ca_certs = str(self.client_ca)
            config.verify_mode = ssl.CERT_REQUIRED
        if self.quiet:
            config.accesslog = None
            config.errorlog = None
            config.loglevel = "ERROR"
        return config

    def start(self) -> FakeApns:
        from hypercorn.asyncio import serve

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
            config = self._config()

            async def main() -> None:
                assert self._stop is not None
                task = loop.create_task(serve(self, config, shutdown_trigger=self._stop.wait))  # type: ignore[arg-type]
                await asyncio.sleep(0)
                ready.set()
                await task

            loop.run_until_complete(main())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-apns", daemon=True)
        self._thread.start()
        ready.wait(10)
        _wait_listening(self.port, host=self.host)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=10)


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
