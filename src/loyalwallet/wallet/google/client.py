"""The Google Wallet REST client (walletobjects v1) and its OAuth2 token.

Tokens come from the service-account JWT bearer grant (RFC 7523): a JWT signed with
the key, scope wallet_object.issuer, exchanged at the key's token_uri for an access
token that is cached until shortly before it expires.

Base URLs are settings, so tests and staging point the client at a fake:
LOYALWALLET_GOOGLE_API_URL (default https://walletobjects.googleapis.com/walletobjects/v1)
and LOYALWALLET_GOOGLE_TOKEN_URL (default: the key file's token_uri).

Batch requests (Google's documented `POST /batch`, multipart/mixed, one inner HTTP
request per part, at most 1000): many calls in one round trip, which is how a campaign
chunk's addMessage calls go (`WalletClient.batch`).
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import jwt
import orjson
from cryptography.hazmat.primitives.asymmetric import rsa

from loyalwallet.config import env

API_URL = "https://walletobjects.googleapis.com/walletobjects/v1"
SCOPE = "https://www.googleapis.com/auth/wallet_object.issuer"
GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# Renew a token this long before Google says it expires (clock skew, slow requests).
TOKEN_MARGIN = 120.0


class GoogleApiError(Exception):
    """Google answered with an error status."""

    def __init__(self, status: int, message: str, reason: str = "", retry_after: float | None = None):
        super().__init__(f"Google Wallet API {status}: {message}")
        self.status = status
        self.message = message
        self.reason = reason
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.status in (408, 429) or self.status >= 500


class TokenError(GoogleApiError):
    """The token endpoint refused the key (or failed)."""


@dataclass(frozen=True)
class Credentials:
    email: str
    key_id: str
    token_uri: str
    private_key: rsa.RSAPrivateKey = field(repr=False)


def api_url() -> str:
    return (env("GOOGLE_API_URL", API_URL) or API_URL).rstrip("/")


def batch_url() -> str:
    """Google's batch endpoint: /batch at the API's host (the path before /walletobjects)."""
    return api_url().rsplit("/walletobjects/", 1)[0] + "/batch"


# Calls per batch request (Google takes at most 1000).
BATCH_MAX = 1000


def encode_batch(calls: list[tuple[str, str, dict[str, Any] | None]], prefix: str) -> tuple[str, bytes]:
    """(boundary, body) of a multipart/mixed batch: part n is `Content-ID: <n>` holding the
    inner request `METHOD prefix/path HTTP/1.1` with its JSON body (orjson, built as bytes:
    a chunk's 1,000 calls are encoded per send)."""
    boundary = "batch_" + secrets.token_hex(12)
    out = []
    for n, (method, path, body) in enumerate(calls):
        data = orjson.dumps(body) if body is not None else b""
        out.append(
            (
                f"--{boundary}\r\nContent-Type: application/http\r\nContent-ID: <{n}>\r\n\r\n"
                f"{method} {prefix}/{path} HTTP/1.1\r\nContent-Type: application/json; charset=UTF-8\r\n"
                f"Content-Length: {len(data)}\r\n\r\n"
            ).encode()
            + data
            + b"\r\n"
        )
    out.append(f"--{boundary}--\r\n".encode())
    return boundary, b"".join(out)


def decode_batch(content_type: str, raw: bytes, count: int) -> list[tuple[int, dict[str, Any]]]:
    """The inner answers of a batch response, in the order of the calls (by Content-ID
    `<response-n>`); a call without an answer counts as 503 (tried again)."""
    boundary = ""
    for param in content_type.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.lower() == "boundary":
            boundary = value.strip('"')
    if not boundary:
        raise GoogleApiError(502, f"batch answer without a multipart boundary ({content_type!r})")
    answers: list[tuple[int, dict[str, Any]]] = [
        (503, {"error": {"message": "no answer in the batch"}})
    ] * count
    for part in raw.split(b"--" + boundary.encode())[1:]:
        if part.startswith(b"--"):
            break
        head, _, inner = part.strip(b"\r\n").partition(b"\r\n\r\n")
        cid = ""
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-id":
                cid = value.strip().strip("<>").removeprefix("response-")
        status_head, _, body = inner.partition(b"\r\n\r\n")
        status_line = status_head.split(b"\r\n", 1)[0].split()
        if not cid.isdigit() or int(cid) >= count or len(status_line) < 2:
            continue
        try:
            doc = orjson.loads(body) if body.strip() else {}
        except ValueError:
            doc = {}
        answers[int(cid)] = (int(status_line[1]), doc if isinstance(doc, dict) else {})
    return answers


def answer_error(status: int, doc: dict[str, Any]) -> GoogleApiError:
    """A batch's inner error answer as the error a single call would raise."""
    err = doc.get("error") if isinstance(doc, dict) else None
    message, reason = "error", ""
    if isinstance(err, dict):
        message = str(err.get("message") or message)
        reason = str(err.get("status") or "")
        details = err.get("errors")
        if isinstance(details, list) and details and isinstance(details[0], dict):
            reason = str(details[0].get("reason") or reason)
    return GoogleApiError(status, message[:500], reason)


def token_url(creds: Credentials) -> str:
    return env("GOOGLE_TOKEN_URL") or creds.token_uri


def _timeout() -> httpx.Timeout:
    seconds = float(env("GOOGLE_TIMEOUT", "15") or 15)
    return httpx.Timeout(seconds, connect=min(seconds, 5.0))


_http: httpx.Client | None = None
_http_lock = threading.Lock()


def http() -> httpx.Client:
    """One pooled client per process (HTTP/2 to Google; plain HTTP/1.1 to local fakes)."""
    global _http
    with _http_lock:
        if _http is None:
            _http = httpx.Client(http2=True, headers={"User-Agent": "loyalwallet"})
        return _http


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def _error(response: httpx.Response, cls: type[GoogleApiError] = GoogleApiError) -> GoogleApiError:
    message, reason = response.reason_phrase or "error", ""
    try:
        doc = response.json()
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        err = doc.get("error")
        if isinstance(err, dict):
            message = str(err.get("message") or message)
            reason = str(err.get("status") or "")
            details = err.get("errors")
            if isinstance(details, list) and details and isinstance(details[0], dict):
                reason = str(details[0].get("reason") or reason)
        elif isinstance(err, str):  # the token endpoint: {"error": "invalid_grant", ...}
            reason = err
            message = str(doc.get("error_description") or err)
    return cls(response.status_code, message[:500], reason, _retry_after(response))


# --- tokens ------------------------------------------------------------------------------

_tokens: dict[tuple[str, str, str], tuple[str, float]] = {}
_tokens_lock = threading.Lock()


def clear_tokens() -> None:
    with _tokens_lock:
        _tokens.clear()


def forget_token(creds: Credentials) -> None:
    with _tokens_lock:
        _tokens.pop((creds.email, creds.key_id, token_url(creds)), None)


def access_token(creds: Credentials) -> str:
    url = token_url(creds)
    cache_key = (creds.email, creds.key_id, url)
    now = time.monotonic()
    with _tokens_lock:
        cached = _tokens.get(cache_key)
        if cached and cached[1] > now:
            return cached[0]
    issued = int(time.time())
    assertion = jwt.encode(
        {"iss": creds.email, "scope": SCOPE, "aud": url, "iat": issued, "exp": issued + 3600},
        creds.private_key,
        algorithm="RS256",
        headers={"kid": creds.key_id},
    )
    response = http().post(url, data={"grant_type": GRANT, "assertion": assertion}, timeout=_timeout())
    if response.status_code != 200:
        raise _error(response, TokenError)
    doc = response.json()
    token = doc.get("access_token")
    if not isinstance(token, str) or not token:
        raise TokenError(502, "the token endpoint answered without an access_token")
    lifetime = float(doc.get("expires_in") or 3600)
    with _tokens_lock:
        _tokens[cache_key] = (token, now + max(0.0, lifetime - TOKEN_MARGIN))
    return token


# --- REST --------------------------------------------------------------------------------


class WalletClient:
    """loyaltyClass / loyaltyObject calls for one issuer's credentials."""

    def __init__(self, creds: Credentials):
        self.creds = creds

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        url = f"{api_url()}/{path}"
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {access_token(self.creds)}"}
            response = http().request(method, url, json=body, headers=headers, timeout=_timeout())
            if response.status_code == 401 and attempt == 1:
                forget_token(self.creds)  # revoked or expired early: one fresh token, once
                continue
            if response.status_code >= 400:
                raise _error(response)
            return response.json() if response.content else {}
        raise AssertionError("unreachable")

    def batch(self, calls: list[tuple[str, str, dict[str, Any] | None]]) -> list[tuple[int, dict[str, Any]]]:
        """Several calls (method, path as _path makes it, body) in one batch request; their
        (status, answer) in order. The batch itself failing raises as a single call does."""
        if not calls:
            return []
        if len(calls) > BATCH_MAX:
            raise ValueError(f"a batch holds at most {BATCH_MAX} calls")
        boundary, payload = encode_batch(calls, urlsplit(api_url()).path)
        for attempt in (1, 2):
            headers = {
                "Authorization": f"Bearer {access_token(self.creds)}",
                "Content-Type": f"multipart/mixed; boundary={boundary}",
            }
            response = http().post(batch_url(), content=payload, headers=headers, timeout=_timeout())
            if response.status_code == 401 and attempt == 1:
                forget_token(self.creds)
                continue
            if response.status_code >= 400:
                raise _error(response)
            return decode_batch(response.headers.get("content-type", ""), response.content, len(calls))
        raise AssertionError("unreachable")

    @staticmethod
    def _path(kind: str, resource_id: str | None = None, verb: str = "") -> str:
        path = kind if resource_id is None else f"{kind}/{quote(resource_id, safe='')}"
        return f"{path}/{verb}" if verb else path

    def insert(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", self._path(kind), body)

    def get(self, kind: str, resource_id: str) -> dict[str, Any]:
        return self._call("GET", self._path(kind, resource_id))

    def patch(self, kind: str, resource_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("PATCH", self._path(kind, resource_id), body)

    def add_message(self, kind: str, resource_id: str, message: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", self._path(kind, resource_id, "addMessage"), {"message": message})

    def upsert(
        self, kind: str, body: dict[str, Any], patch: dict[str, Any], *, exists: bool
    ) -> tuple[str, dict[str, Any]]:
        """Insert or patch, whichever applies; a 404 on patch inserts, a 409 on insert
        patches (our idea of what Google holds may be stale). Returns (verb, answer)."""
        if exists:
            try:
                return "patch", self.patch(kind, body["id"], patch)
            except GoogleApiError as exc:
                if exc.status != 404:
                    raise
        try:
            return "insert", self.insert(kind, body)
        except GoogleApiError as exc:
            if exc.status != 409:
                raise
        return "patch", self.patch(kind, body["id"], patch)
