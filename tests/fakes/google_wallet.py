"""A local fake of Google's OAuth2 token endpoint and the Wallet REST API (walletobjects v1).

It behaves like Google where our client depends on it:
- POST /token: the service-account JWT bearer grant; the assertion must verify with
  the registered key's public half, name the token URL as audience and ask for the
  wallet_object.issuer scope; answers a short-lived bearer token;
- /walletobjects/v1/giftCardClass and /giftCardObject (gift certificates): insert, get,
  patch, with the fields of Google's giftcardclass / giftcardobject descriptions (Money
  as int64 micros in a string with a currency code, DateTime with an offset);
- /walletobjects/v1/loyaltyClass and /loyaltyObject: insert (409 when the id exists),
  get and patch (404 when it does not; null clears a field), addMessage (at most 3
  notifying messages per object in 24 hours, then 429 like Google's quota), every call
  checking the bearer token (401) and the request body (400 with Google's error shape:
  unknown fields, required fields, id formats, enums, colours, image URIs);
- the read-only `hasUsers` of an object: ignored when sent, true in every answer that
  shows the object (insert, get, patch, addMessage) once a test called `save(id)` (a
  guest saved it), left out while false;
- POST /batch: Google's batch requests (multipart/mixed with a boundary, each part
  `Content-Type: application/http` holding one inner request to /walletobjects/v1 with an
  optional Content-ID, at most 1000 parts; the outer Authorization applies to every inner
  request); answered multipart/mixed, part n with `Content-ID: <response-n>` holding the
  inner HTTP answer. Each inner call is checked, recorded and faulted as a single call;
- faults on demand: answer some calls with a status, or stall them past the client's
  timeout.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote

import jwt

SCOPE = "https://www.googleapis.com/auth/wallet_object.issuer"
GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"

CLASS_FIELDS = {
    "accountIdLabel", "accountNameLabel", "allowMultipleUsersPerObject", "appLinkData", "callbackOptions",
    "classTemplateInfo", "countryCode", "discoverableProgram", "enableSmartTap", "heroImage",
    "hexBackgroundColor", "homepageUri", "id", "imageModulesData", "infoModuleData", "issuerName", "kind",
    "linksModuleData", "localizedAccountIdLabel", "localizedAccountNameLabel", "localizedIssuerName",
    "localizedProgramName", "localizedRewardsTier", "localizedRewardsTierLabel",
    "localizedSecondaryRewardsTier", "localizedSecondaryRewardsTierLabel", "locations", "merchantLocations",
    "messages", "multipleDevicesAndHoldersAllowedStatus", "notifyPreference", "programLogo", "programName",
    "redemptionIssuers", "review", "reviewStatus", "rewardsTier", "rewardsTierLabel", "secondaryRewardsTier",
    "secondaryRewardsTierLabel", "securityAnimation", "textModulesData", "valueAddedModuleData", "version",
    "viewUnlockRequirement", "wideProgramLogo", "wordMark",
}  # fmt: skip
OBJECT_FIELDS = {
    "accountId", "accountName", "appLinkData", "barcode", "classId", "classReference",
    "disableExpirationNotification", "groupingInfo", "hasLinkedDevice", "hasUsers", "heroImage", "id",
    "imageModulesData", "infoModuleData", "kind", "linkedObjectIds", "linkedOfferIds", "linksModuleData",
    "locations", "loyaltyPoints", "merchantLocations", "messages", "notifyPreference", "passConstraints",
    "rotatingBarcode", "saveRestrictions", "secondaryLoyaltyPoints", "smartTapRedemptionValue", "state",
    "textModulesData", "validTimeInterval", "valueAddedModuleData", "version",
}  # fmt: skip
GIFT_CLASS_FIELDS = {
    "allowBarcodeRedemption", "appLinkData", "callbackOptions", "cardNumberLabel", "classTemplateInfo",
    "countryCode", "enableSmartTap", "eventNumberLabel", "heroImage", "hexBackgroundColor", "homepageUri",
    "id", "imageModulesData", "infoModuleData", "issuerName", "kind", "linksModuleData",
    "localizedCardNumberLabel", "localizedEventNumberLabel", "localizedIssuerName", "localizedMerchantName",
    "localizedPinLabel", "locations", "merchantLocations", "merchantName", "messages",
    "multipleDevicesAndHoldersAllowedStatus", "notifyPreference", "pinLabel", "programLogo",
    "redemptionIssuers", "review", "reviewStatus", "securityAnimation", "textModulesData",
    "valueAddedModuleData", "version", "viewUnlockRequirement", "wideProgramLogo", "wordMark",
}  # fmt: skip
GIFT_OBJECT_FIELDS = {
    "appLinkData", "balance", "balanceUpdateTime", "barcode", "cardNumber", "classId", "classReference",
    "disableExpirationNotification", "eventNumber", "groupingInfo", "hasLinkedDevice", "hasUsers",
    "heroImage", "id", "imageModulesData", "infoModuleData", "kind", "linkedObjectIds", "linksModuleData",
    "locations", "merchantLocations", "messages", "notifyPreference", "passConstraints", "pin",
    "rotatingBarcode", "saveRestrictions", "smartTapRedemptionValue", "state", "textModulesData",
    "validTimeInterval", "valueAddedModuleData", "version",
}  # fmt: skip
FIELDS = {
    "loyaltyClass": CLASS_FIELDS,
    "loyaltyObject": OBJECT_FIELDS,
    "giftCardClass": GIFT_CLASS_FIELDS,
    "giftCardObject": GIFT_OBJECT_FIELDS,
}
STATES = {"ACTIVE", "COMPLETED", "EXPIRED", "INACTIVE"}
CURRENCY = re.compile(r"^[A-Z]{3}$")
MICROS = re.compile(r"^-?\d{1,19}$")
BARCODES = {"QR_CODE", "PDF_417", "AZTEC", "CODE_128", "CODE_39", "EAN_13", "DATA_MATRIX", "TEXT_ONLY"}
MESSAGE_TYPES = {"TEXT", "TEXT_AND_NOTIFY"}
HEX = re.compile(r"^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
ID_PART = re.compile(r"^[A-Za-z0-9._-]+$")


class Invalid(Exception):
    pass


@dataclass
class Fault:
    status: int | None  # None: stall for `delay` seconds and then answer normally
    times: int
    method: str | None = None
    path: str | None = None
    delay: float = 0.0
    body: dict[str, Any] | None = None


@dataclass
class Call:
    method: str
    path: str
    body: Any
    status: int = 0


@dataclass
class FakeGoogleWallet:
    issuer_id: str = "3388000000012345678"
    keys: dict[str, Any] = field(default_factory=dict)  # service-account email -> public key
    tokens: dict[str, float] = field(default_factory=dict)  # access token -> expiry (monotonic)
    token_lifetime: int = 3600
    classes: dict[str, dict[str, Any]] = field(default_factory=dict)
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    gift_classes: dict[str, dict[str, Any]] = field(default_factory=dict)
    gift_objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    notified: dict[str, list[float]] = field(default_factory=dict)
    saved: set[str] = field(default_factory=set)  # object ids a guest saved (hasUsers)
    calls: list[Call] = field(default_factory=list)
    token_requests: int = 0
    faults: list[Fault] = field(default_factory=list)
    # Whether a PATCH may move an object to another class (our tier classes rely on it).
    allow_class_moves: bool = True
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    # --- control -------------------------------------------------------------------------

    def start(self) -> FakeGoogleWallet:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, body, headers = fake.dispatch(self.command, self.path, self.headers, raw)
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    if "Content-Type" not in headers:
                        self.send_header("Content-Type", "application/json; charset=UTF-8")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass

            do_GET = do_POST = do_PATCH = do_PUT = _handle

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    @property
    def base(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def api_url(self) -> str:
        return f"{self.base}/walletobjects/v1"

    @property
    def token_url(self) -> str:
        return f"{self.base}/token"

    def register(self, email: str, public_key: Any) -> None:
        self.keys[email] = public_key

    def fail(
        self,
        status: int | None,
        times: int = 1,
        *,
        method: str | None = None,
        path: str | None = None,
        delay: float = 0.0,
        body: dict[str, Any] | None = None,
    ) -> None:
        """The next `times` matching calls answer `status` (or stall `delay` seconds)."""
        with self.lock:
            self.faults.append(Fault(status, times, method, path, delay, body))

    def save(self, object_id: str, saved: bool = True) -> None:
        """A guest saves the object to Google Wallet (or, saved=False, removes it)."""
        with self.lock:
            if saved:
                self.saved.add(object_id)
            else:
                self.saved.discard(object_id)

    def _shown(self, kind: str, resource: dict[str, Any]) -> dict[str, Any]:
        """A resource as an answer shows it: an object with its hasUsers."""
        if kind != "loyaltyObject" or resource.get("id") not in self.saved:
            return resource
        return {**resource, "hasUsers": True}

    def calls_to(self, method: str, fragment: str = "") -> list[Call]:
        return [c for c in self.calls if c.method == method and fragment in c.path and c.status < 300]

    # --- dispatch ------------------------------------------------------------------------

    def _fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if (
                    fault.times > 0
                    and fault.method in (None, method)
                    and (fault.path is None or fault.path in path)
                ):
                    fault.times -= 1
                    return fault
        return None

    def dispatch(self, method: str, path: str, headers: Any, raw: bytes) -> tuple[int, Any, dict[str, str]]:
        call = Call(method, path, None)
        self.calls.append(call)
        fault = self._fault(method, path)
        if fault is not None and fault.status is None:
            time.sleep(fault.delay)
        elif fault is not None:
            call.status = fault.status
            return fault.status, fault.body or _error(fault.status, "injected failure"), {}
        try:
            if path == "/batch" and method == "POST":
                status, body, answer_headers = self.batch(headers, raw)
                call.status = status
                return status, body, answer_headers
            if path == "/token" and method == "POST":
                call.body = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                status, body = self.token(call.body)
            else:
                call.body = json.loads(raw) if raw else None
                status, body = self.api(method, path, headers, call.body)
        except Invalid as exc:
            status, body = 400, _error(400, str(exc))
        call.status = status
        return status, body, {}

    def batch(self, headers: Any, raw: bytes) -> tuple[int, Any, dict[str, str]]:
        """Google's batch request: every part one inner call, answered in a part of its own."""
        match = re.match(r'multipart/mixed;\s*boundary="?([^";]+)"?', headers.get("content-type", ""))
        if not match:
            return 400, _error(400, "A batch request needs Content-Type multipart/mixed with a boundary"), {}
        boundary = match.group(1).encode()
        parts = []
        for part in raw.split(b"--" + boundary)[1:]:
            if part.startswith(b"--"):
                break
            parts.append(part.strip(b"\r\n"))
        if not parts or len(parts) > 1000:
            return 400, _error(400, "A batch holds 1 to 1000 requests"), {}
        out = []
        for part in parts:
            head, _, inner = part.partition(b"\r\n\r\n")
            part_headers = _header_lines(head)
            if part_headers.get("content-type", "").split(";")[0].strip() != "application/http":
                return 400, _error(400, "Each batch part must be Content-Type: application/http"), {}
            request_head, _, body = inner.partition(b"\r\n\r\n")
            request_line, _, rest = request_head.decode("latin-1").partition("\r\n")
            words = request_line.split()
            if (
                len(words) != 3
                or not words[2].startswith("HTTP/")
                or not words[1].startswith("/walletobjects/v1/")
            ):
                return 400, _error(400, f"Bad inner request line {request_line!r}"), {}
            inner_headers = _header_lines(rest.encode("latin-1"))
            inner_headers.setdefault("authorization", headers.get("authorization", ""))
            status, answer, _ = self.dispatch(words[0], words[1], inner_headers, body.strip(b"\r\n"))
            data = json.dumps(answer)
            cid = part_headers.get("content-id", "").strip("<>")
            out.append(
                "Content-Type: application/http\r\n"
                + (f"Content-ID: <response-{cid}>\r\n" if cid else "")
                + f"\r\nHTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
                + f"Content-Type: application/json; charset=UTF-8\r\nContent-Length: {len(data.encode())}\r\n\r\n{data}"
            )
        answer_boundary = "batch_" + secrets.token_hex(8)
        payload = "".join(f"--{answer_boundary}\r\n{p}\r\n" for p in out) + f"--{answer_boundary}--\r\n"
        return 200, payload.encode(), {"Content-Type": f"multipart/mixed; boundary={answer_boundary}"}

    def token(self, form: dict[str, str]) -> tuple[int, Any]:
        self.token_requests += 1
        if form.get("grant_type") != GRANT:
            return 400, {"error": "unsupported_grant_type"}
        assertion = form.get("assertion", "")
        try:
            unverified = jwt.decode(assertion, options={"verify_signature": False})
            key = self.keys[unverified["iss"]]
            claims = jwt.decode(assertion, key, algorithms=["RS256"], audience=self.token_url)
        except (jwt.PyJWTError, KeyError):
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        if claims.get("scope") != SCOPE or "exp" not in claims:
            return 400, {"error": "invalid_scope", "error_description": "bad scope or no exp"}
        token = "ya29." + secrets.token_urlsafe(24)
        self.tokens[token] = time.monotonic() + self.token_lifetime
        return 200, {"access_token": token, "expires_in": self.token_lifetime, "token_type": "Bearer"}

    def api(self, method: str, path: str, headers: Any, body: Any) -> tuple[int, Any]:
        auth = headers.get("authorization", "")
        token = auth.removeprefix("Bearer ")
        if not auth.startswith("Bearer ") or self.tokens.get(token, 0) < time.monotonic():
            return 401, _error(401, "Request had invalid authentication credentials.")
        match = re.fullmatch(
            r"/walletobjects/v1/(loyaltyClass|loyaltyObject|giftCardClass|giftCardObject)"
            r"(?:/([^/]+))?(?:/(addMessage))?",
            path,
        )
        if not match:
            return 404, _error(404, f"no such endpoint {path}")
        kind, resource_id, verb = match.group(1), match.group(2), match.group(3)
        store = {
            "loyaltyClass": self.classes,
            "loyaltyObject": self.objects,
            "giftCardClass": self.gift_classes,
            "giftCardObject": self.gift_objects,
        }[kind]
        resource_id = unquote(resource_id) if resource_id else None
        if isinstance(body, dict) and "hasUsers" in body:  # read-only: set by Google, ignored when sent
            body = {k: v for k, v in body.items() if k != "hasUsers"}
        with self.lock:
            if resource_id is None and method == "POST":
                self._check(kind, body, full=True)
                if body["id"] in store:
                    return 409, _error(
                        409, f"Resource with id {body['id']} already exists.", "ALREADY_EXISTS"
                    )
                stored = dict(body)
                if kind.endswith("Class") and stored.get("reviewStatus") == "UNDER_REVIEW":
                    stored["reviewStatus"] = "APPROVED"
                store[body["id"]] = stored
                return 200, self._shown(kind, stored)
            if resource_id is None or resource_id not in store:
                return 404, _error(404, f"Resource {resource_id} not found.", "NOT_FOUND")
            current = store[resource_id]
            if method == "GET":
                return 200, self._shown(kind, current)
            if method == "PATCH":
                self._check(kind, body, full=False)
                moved = kind == "loyaltyObject" and body.get("classId") not in (None, current.get("classId"))
                if moved and not self.allow_class_moves:
                    raise Invalid("classId of an existing object cannot be changed")
                merged = {**current}
                for key, value in body.items():
                    if value is None:
                        merged.pop(key, None)
                    else:
                        merged[key] = value
                if kind.endswith("Class") and merged.get("reviewStatus") == "UNDER_REVIEW":
                    merged["reviewStatus"] = "APPROVED"
                self._check(kind, merged, full=True)
                store[resource_id] = merged
                return 200, self._shown(kind, merged)
            if method == "POST" and verb == "addMessage":
                return self._add_message(resource_id, current, body)
        return 405, _error(405, "method not allowed")

    def _add_message(self, resource_id: str, current: dict[str, Any], body: Any) -> tuple[int, Any]:
        message = (body or {}).get("message")
        if not isinstance(message, dict) or not message.get("header") or not message.get("body"):
            raise Invalid("message needs header and body")
        if message.get("messageType", "TEXT") not in MESSAGE_TYPES:
            raise Invalid(f"messageType {message.get('messageType')!r}")
        messages = list(current.get("messages") or [])
        if len(messages) >= 10:
            raise Invalid("an object holds at most 10 messages")
        if message.get("messageType") == "TEXT_AND_NOTIFY":
            now = time.time()
            recent = [t for t in self.notified.get(resource_id, []) if t > now - 86400]
            if len(recent) >= 3:
                return 429, _error(
                    429, "QuotaExceededException: too many notifications", "RESOURCE_EXHAUSTED"
                )
            self.notified[resource_id] = [*recent, now]
        current["messages"] = [*messages, message]
        return 200, {"resource": self._shown("loyaltyObject", current)}

    # --- validation ----------------------------------------------------------------------

    def _check(self, kind: str, body: Any, *, full: bool) -> None:
        if not isinstance(body, dict):
            raise Invalid("the body must be a JSON object")
        allowed = FIELDS[kind]
        unknown = set(body) - allowed
        if unknown:
            raise Invalid(f"Invalid JSON payload received. Unknown name \"{sorted(unknown)[0]}\" at '{kind}'")
        if "id" in body:
            self._check_id(body["id"])
        if kind == "loyaltyClass":
            self._check_class(body, full)
        elif kind == "loyaltyObject":
            self._check_object(body, full)
        elif kind == "giftCardClass":
            self._check_gift_class(body, full)
        else:
            self._check_gift_object(body, full)
        for module in body.get("textModulesData") or []:
            if set(module) - {
                "header",
                "body",
                "id",
                "localizedHeader",
                "localizedBody",
                "modifyViewConstraints",
            }:
                raise Invalid("textModulesData: unknown field")
            if not module.get("body") and not module.get("header"):
                raise Invalid("textModulesData: header or body required")
        for uri in ((body.get("linksModuleData") or {}).get("uris")) or []:
            if not re.match(r"^(https?|tel|mailto):", uri.get("uri", "")):
                raise Invalid(f"linksModuleData: bad uri {uri.get('uri')!r}")
        for loc in body.get("merchantLocations") or []:
            if set(loc) - {"latitude", "longitude"} or not -90 <= loc.get("latitude", 999) <= 90:
                raise Invalid("merchantLocations: bad location")
        for name in ("programLogo", "heroImage", "wideProgramLogo"):
            if body.get(name) is not None:
                uri = ((body[name] or {}).get("sourceUri") or {}).get("uri", "")
                if not re.match(r"^https?://", uri):
                    raise Invalid(f"{name}: sourceUri.uri must be an absolute URL")

    def _check_id(self, value: Any) -> None:
        if not isinstance(value, str) or not value.startswith(self.issuer_id + "."):
            raise Invalid(f"id {value!r} must start with the issuer id {self.issuer_id}.")
        if not ID_PART.match(value):
            raise Invalid(f"id {value!r} has characters other than letters, digits, '.', '_' and '-'")

    def _check_class(self, body: dict[str, Any], full: bool) -> None:
        if full:
            for required in ("id", "issuerName", "programName", "programLogo", "reviewStatus"):
                if not body.get(required):
                    raise Invalid(f"loyaltyClass.{required} is required")
        status = body.get("reviewStatus")
        if status is not None and status not in ("UNDER_REVIEW", "DRAFT", "APPROVED"):
            raise Invalid(f"reviewStatus {status!r}")
        colour = body.get("hexBackgroundColor")
        if colour is not None and not HEX.match(colour):
            raise Invalid(f"hexBackgroundColor {colour!r}")

    def _check_object(self, body: dict[str, Any], full: bool) -> None:
        if full:
            for required in ("id", "classId", "state"):
                if not body.get(required):
                    raise Invalid(f"loyaltyObject.{required} is required")
        if "classId" in body:
            cls = self.classes.get(body["classId"])
            if cls is None:
                raise Invalid(f"class {body['classId']} does not exist")
            if cls.get("reviewStatus") != "APPROVED":
                raise Invalid(f"class {body['classId']} is not approved")
        if "state" in body and body["state"] not in STATES:
            raise Invalid(f"state {body['state']!r}")
        barcode = body.get("barcode")
        if barcode is not None and (barcode.get("type") not in BARCODES or not barcode.get("value")):
            raise Invalid("barcode needs a known type and a value")
        for name in ("loyaltyPoints", "secondaryLoyaltyPoints"):
            points = body.get(name)
            if points is None:
                continue
            balance = points.get("balance") or {}
            if len([k for k in ("string", "int", "double", "money") if k in balance]) != 1:
                raise Invalid(f"{name}.balance needs exactly one of string, int, double, money")
            if "int" in balance and not isinstance(balance["int"], int):
                raise Invalid(f"{name}.balance.int must be an integer")

    def _check_gift_class(self, body: dict[str, Any], full: bool) -> None:
        if full:
            for required in ("id", "issuerName", "reviewStatus"):
                if not body.get(required):
                    raise Invalid(f"giftCardClass.{required} is required")
        status = body.get("reviewStatus")
        if status is not None and status not in ("UNDER_REVIEW", "DRAFT", "APPROVED"):
            raise Invalid(f"reviewStatus {status!r}")
        if "allowBarcodeRedemption" in body and not isinstance(body["allowBarcodeRedemption"], bool):
            raise Invalid("allowBarcodeRedemption must be a boolean")

    def _check_gift_object(self, body: dict[str, Any], full: bool) -> None:
        if full:
            for required in ("id", "classId", "state", "cardNumber"):
                if not body.get(required):
                    raise Invalid(f"giftCardObject.{required} is required")
        if "classId" in body:
            cls = self.gift_classes.get(body["classId"])
            if cls is None:
                raise Invalid(f"class {body['classId']} does not exist")
            if cls.get("reviewStatus") != "APPROVED":
                raise Invalid(f"class {body['classId']} is not approved")
        if "state" in body and body["state"] not in STATES:
            raise Invalid(f"state {body['state']!r}")
        barcode = body.get("barcode")
        if barcode is not None and (barcode.get("type") not in BARCODES or not barcode.get("value")):
            raise Invalid("barcode needs a known type and a value")
        balance = body.get("balance")
        if balance is not None:
            if set(balance) - {"micros", "currencyCode", "kind"}:
                raise Invalid("balance: unknown field of Money")
            if not isinstance(balance.get("micros"), str) or not MICROS.match(balance["micros"]):
                raise Invalid("balance.micros must be an int64 in a string")
            if not CURRENCY.match(str(balance.get("currencyCode", ""))):
                raise Invalid("balance.currencyCode must be an ISO 4217 code")
        for name, value in (
            ("balanceUpdateTime", body.get("balanceUpdateTime")),
            ("validTimeInterval.start", (body.get("validTimeInterval") or {}).get("start")),
            ("validTimeInterval.end", (body.get("validTimeInterval") or {}).get("end")),
        ):
            if value is None:
                continue
            try:
                stamp = dt.datetime.fromisoformat(str(value.get("date")))
            except ValueError:
                raise Invalid(f"{name}.date is not an ISO 8601 date-time") from None
            if stamp.tzinfo is None:
                raise Invalid(f"{name}.date needs an offset")


class _Server(ThreadingHTTPServer):
    # A listen backlog for many clients at once (the default 5 resets connections when
    # 16 threads connect to a loaded machine's fake at the same moment).
    request_queue_size = 128


def _header_lines(raw: bytes) -> dict[str, str]:
    """Header lines as a dict with lower-case names."""
    out = {}
    for line in raw.decode("latin-1").split("\r\n"):
        name, sep, value = line.partition(":")
        if sep:
            out[name.strip().lower()] = value.strip()
    return out


def _error(status: int, message: str, reason: str = "") -> dict[str, Any]:
    names = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND"}
    return {
        "error": {
            "code": status,
            "message": message,
            "status": reason or names.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION"),
        }
    }
