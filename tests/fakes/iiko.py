"""A local fake of iikoCloud (api-ru.iiko.services), the part loyalwallet uses.

Every request body is validated against tests/fakes/iiko_schema.json (written down from
iiko's published OpenAPI description); a body that does not match gets 400 with iiko's
error shape and is recorded in `invalid`, so a test can assert none was sent. Every
answer is validated against the same file before it is sent.

It behaves like iikoCloud where our client depends on it:
- POST /api/1/access_token {"apiLogin"}: a token for a known login, 401 otherwise;
  every other call needs `Authorization: Bearer <token>` (401 when unknown or expired);
- organizations of the login; customer categories and loyalty programs of an
  organization (400 "Organization ... not found" for another one);
- customers: info by phone / card number / card track / id (400 "There is no user with
  ..." when unknown, as iiko answers), create_or_update (by id or phone; a phone iiko
  rejects gets 400), card/add (400 when the card number is already someone's),
  program/add, wallet topup / chargeoff;
- faults on demand (`fail(path, status, times)`), a per-call delay, and an optional
  rate limit (429 with Retry-After past `rate_limit` calls a second).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

SCHEMA = json.loads((Path(__file__).with_name("iiko_schema.json")).read_text())


def _validator(section: str, path: str) -> Draft202012Validator | None:
    schema = SCHEMA[section].get(path)
    if schema is None:
        return None
    return Draft202012Validator({**schema, "$defs": SCHEMA["$defs"]})


def validate_webhook(events: Any) -> None:
    Draft202012Validator({**SCHEMA["webhook"], "$defs": SCHEMA["$defs"]}).validate(events)


@dataclass
class Fault:
    path: str
    status: int
    times: int


@dataclass
class Customer:
    id: str
    phone: str | None
    name: str | None = None
    birthday: str | None = None
    consent: int | None = None
    promo: bool = True  # shouldReceivePromoActionsInfo: iiko's default for a new customer
    cards: list[dict[str, str]] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)  # category ids
    balances: dict[str, Decimal] = field(default_factory=dict)  # wallet id -> balance
    programs: set[str] = field(default_factory=set)
    last_order: str | None = None


@dataclass
class Call:
    path: str
    body: Any
    status: int = 0


class FakeIiko:
    def __init__(self) -> None:
        self.org_id = str(uuid.uuid4())
        self.org_name = "Кофейня на Лесной"
        self.logins: dict[str, list[dict[str, str]]] = {}
        self.tokens: dict[str, tuple[str, float]] = {}  # token -> (login, expiry)
        self.token_lifetime = 3600.0
        self.program_id = str(uuid.uuid4())
        self.wallet_id = str(uuid.uuid4())
        self.categories = {str(uuid.uuid4()): "Стандарт", str(uuid.uuid4()): "Золото"}
        self.customers: dict[str, Customer] = {}
        self.calls: list[Call] = []
        self.invalid: list[tuple[str, str]] = []
        self.faults: list[Fault] = []
        self.delay = 0.0
        self.rate_limit: float | None = None
        self._window: list[float] = []
        self.topups: list[dict[str, Any]] = []
        self.transactions: dict[str, list[dict[str, Any]]] = {}  # customer id -> report items
        self.hangs: dict[str, list[float]] = {}  # path -> [seconds, times]: apply, then answer late
        self.rejected_phones: set[str] = set()
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    # --- control -----------------------------------------------------------------------

    def add_login(self, login: str, *, orgs: list[dict[str, str]] | None = None) -> None:
        self.logins[login] = orgs if orgs is not None else [{"id": self.org_id, "name": self.org_name}]

    def fail(self, path: str, status: int, times: int = 1) -> None:
        with self.lock:
            self.faults.append(Fault(path, status, times))

    def hang_after_applying(self, path: str, seconds: float, times: int = 1) -> None:
        """The next `times` calls of `path` are carried out, and answered only after
        `seconds` (past the client's timeout: it never learns that they were applied)."""
        with self.lock:
            self.hangs[path] = [seconds, times]

    def category_id(self, name: str) -> str:
        return next(k for k, v in self.categories.items() if v == name)

    def add_customer(self, phone: str, *, card: str | None = None, balance: int = 0) -> Customer:
        c = Customer(id=str(uuid.uuid4()), phone=phone)
        if card:
            c.cards.append({"id": str(uuid.uuid4()), "track": card, "number": card})
        c.balances[self.wallet_id] = Decimal(balance)
        c.programs.add(self.program_id)
        c.categories.append(self.category_id("Стандарт"))
        self.customers[c.id] = c
        return c

    def by_phone(self, phone: str) -> Customer | None:
        return next((c for c in self.customers.values() if c.phone == phone), None)

    def order_closed(self, customer: Customer, amount: int, *, category: str | None = None) -> None:
        """What iikoFront does when a guest's order closes: bonuses accrue, maybe a new category."""
        with self.lock:
            customer.balances[self.wallet_id] = customer.balances.get(self.wallet_id, Decimal(0)) + amount
            if category:
                customer.categories = [self.category_id(category)]
            customer.last_order = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.000")

    def paths(self) -> list[str]:
        with self.lock:
            return [c.path for c in self.calls]

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeIiko:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, body, headers = fake.dispatch(self.path, self.headers.get("authorization"), raw)
                data = json.dumps(body, ensure_ascii=False).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    # --- the API -----------------------------------------------------------------------

    @staticmethod
    def _error(status: int, description: str, error: str | None = None) -> tuple[int, Any, dict[str, str]]:
        return (
            status,
            {"correlationId": str(uuid.uuid4()), "errorDescription": description, "error": error},
            {},
        )

    def dispatch(self, path: str, auth: str | None, raw: bytes) -> tuple[int, Any, dict[str, str]]:
        if self.delay:
            time.sleep(self.delay)
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = None
        call = Call(path, body)
        with self.lock:
            self.calls.append(call)
            if self.rate_limit is not None:
                now = time.monotonic()
                self._window = [t for t in self._window if now - t < 1.0]
                if len(self._window) >= self.rate_limit:
                    call.status = 429
                    status, doc, _ = self._error(429, "Too many requests", "TOO_MANY_REQUESTS")
                    return status, doc, {"Retry-After": "1"}
                self._window.append(now)
            for fault in self.faults:
                if fault.times > 0 and fault.path == path:
                    fault.times -= 1
                    call.status = fault.status
                    return self._error(fault.status, "Internal server error (fault injected)")
            status, doc, headers = self._answer(path, auth, body)
            hang = self.hangs.get(path)
            late = 0.0
            if hang is not None and hang[1] > 0:
                hang[1] -= 1
                late = hang[0]
        call.status = status
        if late:
            time.sleep(late)
        if status == 200:
            check = _validator("responses", path)
            if check is not None:
                check.validate(doc)  # our fake must answer like iiko does
        return status, doc, headers

    def _answer(self, path: str, auth: str | None, body: Any) -> tuple[int, Any, dict[str, str]]:
        check = _validator("requests", path)
        if check is None:
            return self._error(404, f"Unknown method {path}")
        errors = sorted(check.iter_errors(body), key=lambda e: list(e.path))
        if errors:
            self.invalid.append((path, errors[0].message))
            return self._error(400, f"Invalid request: {errors[0].message}", "BAD_REQUEST")
        if path == "/api/1/access_token":
            login = body["apiLogin"]
            if login not in self.logins:
                return self._error(401, "Login " + login[:4] + "... is not authorized", "UNAUTHORIZED")
            token = uuid.uuid4().hex
            self.tokens[token] = (login, time.monotonic() + self.token_lifetime)
            return 200, {"correlationId": str(uuid.uuid4()), "token": token}, {}
        token = (auth or "").removeprefix("Bearer ").strip()
        held = self.tokens.get(token)
        if held is None or held[1] < time.monotonic():
            return self._error(401, "Token is expired or invalid", "UNAUTHORIZED")
        login = held[0]
        orgs = self.logins.get(login, [])
        if path == "/api/1/organizations":
            return 200, {"correlationId": str(uuid.uuid4()), "organizations": orgs}, {}
        org = body.get("organizationId")
        if org not in {o["id"] for o in orgs}:
            return self._error(400, f"Organization {org} not found or not available for this apiLogin")
        return getattr(self, "_" + path.rsplit("/iiko/", 1)[1].replace("/", "_"))(body)

    def _customer_categories(self, body: Any) -> tuple[int, Any, dict[str, str]]:
        items = [
            {"id": k, "name": v, "isActive": True, "isDefaultForNewGuests": v == "Стандарт"}
            for k, v in self.categories.items()
        ]
        return 200, {"guestCategories": items}, {}

    def _program(self, body: Any) -> tuple[int, Any, dict[str, str]]:
        prog = {
            "id": self.program_id,
            "name": "Бонусы",
            "programType": 1,
            "walletId": self.wallet_id,
            "isActive": True,
        }
        return 200, {"Programs": [prog]}, {}

    def _info(self, c: Customer) -> dict[str, Any]:
        return {
            "id": c.id,
            "phone": c.phone,
            "cards": [dict(card) for card in c.cards],
            "categories": [{"id": k, "name": self.categories[k], "isActive": True} for k in c.categories],
            "walletBalances": [
                {"id": w, "name": "Бонусы", "type": 1, "balance": float(b)} for w, b in c.balances.items()
            ],
            "lastProcessedOrderDate": c.last_order,
            "isDeleted": False,
        }

    def _find(self, kind: str, value: str) -> Customer | None:
        for c in self.customers.values():
            if kind == "id" and c.id == value:
                return c
            if kind == "phone" and c.phone == value:
                return c
            if kind in ("cardNumber", "cardTrack"):
                key = "number" if kind == "cardNumber" else "track"
                if any(card[key] == value for card in c.cards):
                    return c
        return None

    def _customer_info(self, body: Any) -> tuple[int, Any, dict[str, str]]:
        kind = body["type"]
        found = self._find(kind, body[kind])
        if found is None:
            return self._error(400, f"There is no user with {kind} = {body[kind]}")
        return 200, self._info(found), {}

    def _customer_create_or_update(self, body: Any) -> tuple[int, Any, dict[str, str]]:
        phone = body.get("phone")
        if phone and (phone in self.rejected_phones or not phone.startswith("+") or len(phone) < 11):
            return self._error(400, f"Phone {phone[:3]}*** has invalid format")
        c = self.customers.get(body.get("id") or "") or (self._find("phone", phone) if phone else None)
        if c is None:
            c = Customer(id=str(uuid.uuid4()), phone=phone)
            default = next(k for k, v in self.categories.items() if v == "Стандарт")
            c.categories.append(default)
            self.customers[c.id] = c
        c.name = body.get("name") or c.name
        c.birthday = body.get("birthday") or c.birthday
        c.consent = body.get("consentStatus", c.consent)
        c.promo = body.get("shouldReceivePromoActionsInfo", c.promo)
        return 200, {"id": c.id}, {}

    def _customer_card_add(self, body: Any) -> tuple[int, Any, dict[str, str]]:
        c = self.customers.get(body["customerId"])
        if c is None:
            return self._error(400, "Customer not found")
        if self._find("cardNumber", body["cardNumber"]) or self._find("cardTrack", body["cardTrack"]):
            return self._error(400, f"Card {body['cardNumber']} is already in use")
        c.cards.append({"id": str(uuid.uuid4()), "track": body["cardTrack"], "number": body["cardNumber"]})
        return 200, {}, {}

    def _customer_program_add(self, body: Any) -> tuple[int, Any, dict[str, str]]:
        c = self.customers.get(body["customerId"])
        if c is None or body["programId"] != self.program_id:
            return self._error(400, "Customer or program not found")
        c.programs.add(self.program_id)
        c.balances.setdefault(self.wallet_id, Decimal(0))
        return 200, {"userWalletId": str(uuid.uuid4()), "walletId": self.wallet_id}, {}

    def _wallet(self, body: Any, sign: int) -> tuple[int, Any, dict[str, str]]:
        c = self.customers.get(body["customerId"])
        if c is None or body["walletId"] not in c.balances:
            return self._error(400, "Customer has no such wallet")
        before = c.balances[body["walletId"]]
        c.balances[body["walletId"]] += sign * Decimal(str(body["sum"]))
        if sign > 0:
            self.topups.append(dict(body))
        items = self.transactions.setdefault(c.id, [])
        items.append(
            {
                "id": str(uuid.uuid4()),
                "organizationId": self.org_id,
                "revision": len(items) + 1,
                "comment": body.get("comment"),
                "sum": float(body["sum"]),
                "walletId": body["walletId"],
                "type": 2 if sign > 0 else 3,
                "typeName": "RefillWalletFromApi" if sign > 0 else "PayFromWalletFromApi",
                "whenCreated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
                "balanceBefore": float(before),
                "balanceAfter": float(c.balances[body["walletId"]]),
            }
        )
        return 200, {}, {}

    def _customer_transactions_by_date(self, body: Any) -> tuple[int, Any, dict[str, str]]:
        if body["customerId"] not in self.customers:
            return self._error(400, "Customer not found")
        start, end = body["dateFrom"], body["dateTo"]  # one format: compared as text
        items = [t for t in self.transactions.get(body["customerId"], []) if start <= t["whenCreated"] <= end]
        size, number = min(body["pageSize"], 100), body["pageNumber"]
        page = items[number * size : (number + 1) * size]
        return 200, {"transactions": page, "pageNumber": number, "pageSize": size}, {}

    def _customer_wallet_topup(self, body: Any) -> tuple[int, Any, dict[str, str]]:
        return self._wallet(body, 1)

    def _customer_wallet_chargeoff(self, body: Any) -> tuple[int, Any, dict[str, str]]:
        return self._wallet(body, -1)


def order_event(
    fake: FakeIiko,
    *,
    status: str = "Closed",
    customer: Customer | None = None,
    phone: str | None = None,
    total: int = 350,
    items: list[tuple[str, int]] | None = None,
    order_id: str | None = None,
) -> dict[str, Any]:
    """A TableOrderUpdate webhook event as iikoCloud sends it (checked against the schema)."""
    oid = order_id or str(uuid.uuid4())
    order: dict[str, Any] = {
        "status": status,
        "sum": total,
        "number": 17,
        "tableIds": [],
        "items": [
            {
                "type": "Product",
                "status": "Printed",
                "amount": 1,
                "product": {"id": str(uuid.uuid4()), "name": name},
                "price": price,
                "cost": price,
                "resultSum": price,
                "pricePredefined": False,
            }
            for name, price in (items or [])
        ],
    }
    if customer is not None:
        order["customer"] = {"type": "regular", "id": customer.id, "name": customer.name or "Гость"}
    if phone is not None:
        order["phone"] = phone
    event = {
        "eventType": "TableOrderUpdate",
        "eventTime": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
        "organizationId": fake.org_id,
        "correlationId": str(uuid.uuid4()),
        "eventInfo": {
            "id": oid,
            "organizationId": fake.org_id,
            "timestamp": int(time.time() * 1000),
            "creationStatus": "Success",
            "order": order,
        },
    }
    validate_webhook([event])
    return event
