"""The iikoCloud API client (https://api-ru.iiko.services, the /api/1 methods).

- A token comes from the API login (`/api/1/access_token`, valid about an hour); it is
  cached per login for TOKEN_TTL and fetched again on a 401 (once per call).
- Calls are paced per login under LOYALWALLET_IIKO_RATE requests a second (iikoCloud
  limits each API login), and a 429 is reported with its Retry-After.
- Timeouts: LOYALWALLET_IIKO_TIMEOUT seconds (default 15), connect at most 5.
- Errors are `IikoError` with `retryable` (outage, timeout, 408/429/5xx) or not (4xx:
  a bad login, an unknown organisation, a rejected phone), and iiko's own description.

The base URL is LOYALWALLET_IIKO_URL (default https://api-ru.iiko.services), so tests
and staging point it at a fake. Personal data is never put into exception texts by this
module beyond what iiko itself answers; callers log only ids.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx

from loyalwallet.config import env

API_URL = "https://api-ru.iiko.services"
TOKEN_TTL = 45 * 60.0  # iiko's tokens live ~60 min; renew well before


class IikoError(Exception):
    """iikoCloud answered with an error, or could not be reached (status 0)."""

    def __init__(self, status: int, description: str, retry_after: float | None = None):
        super().__init__(f"iikoCloud {status or 'unreachable'}: {description}")
        self.status = status
        self.description = description
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.status in (0, 408, 429) or self.status >= 500


def api_url() -> str:
    return (env("IIKO_URL", API_URL) or API_URL).rstrip("/")


def rate() -> float:
    return max(0.1, float(env("IIKO_RATE", "5") or 5))


def _timeout() -> httpx.Timeout:
    seconds = float(env("IIKO_TIMEOUT", "15") or 15)
    return httpx.Timeout(seconds, connect=min(seconds, 5.0))


_http: httpx.Client | None = None
_lock = threading.Lock()


def http() -> httpx.Client:
    global _http
    with _lock:
        if _http is None:
            _http = httpx.Client(headers={"User-Agent": "loyalwallet"})
        return _http


class Pacer:
    """At most `per_second` calls a second for one key (a thread-safe schedule)."""

    def __init__(self) -> None:
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()

    def wait(self, key: str, per_second: float) -> None:
        with self._lock:
            now = time.monotonic()
            at = max(now, self._next.get(key, 0.0))
            self._next[key] = at + 1.0 / per_second
        if at > now:
            time.sleep(at - now)


PACER = Pacer()
_tokens: dict[str, tuple[str, float]] = {}


def clear_tokens() -> None:
    with _lock:
        _tokens.clear()


def _error(response: httpx.Response) -> IikoError:
    description = response.reason_phrase or "error"
    try:
        doc = response.json()
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        description = str(doc.get("errorDescription") or doc.get("error") or description)
    retry_after: float | None = None
    value = response.headers.get("retry-after")
    if value:
        try:
            retry_after = max(0.0, float(value))
        except ValueError:
            retry_after = None
    return IikoError(response.status_code, description[:500], retry_after)


def _iiko_time(moment: dt.datetime) -> str:
    """iiko's date format, in UTC: 2026-12-07 12:30:00.000."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


@dataclass
class Guest:
    """What loyalwallet reads of an iiko customer (customer/info)."""

    id: str
    card_numbers: list[str] = field(default_factory=list)
    card_tracks: list[str] = field(default_factory=list)
    phone: str | None = None
    category_ids: list[str] = field(default_factory=list)
    category_names: list[str] = field(default_factory=list)
    balances: dict[str, Decimal] = field(default_factory=dict)  # wallet id -> balance
    last_order: str | None = None

    @classmethod
    def from_info(cls, doc: dict[str, Any]) -> Guest:
        cards = [
            str(c.get("number") or c.get("track"))
            for c in doc.get("cards") or []
            if c.get("number") or c.get("track")
        ]
        cats = [c for c in doc.get("categories") or [] if c.get("isActive", True)]
        return cls(
            id=str(doc["id"]),
            card_numbers=cards,
            card_tracks=[str(c["track"]) for c in doc.get("cards") or [] if c.get("track")],
            phone=str(doc["phone"]) if doc.get("phone") else None,
            category_ids=[str(c.get("id")) for c in cats],
            category_names=[str(c.get("name") or "") for c in cats],
            balances={
                str(w.get("id")): Decimal(str(w.get("balance") or 0)) for w in doc.get("walletBalances") or []
            },
            last_order=doc.get("lastProcessedOrderDate"),
        )


class IikoClient:
    def __init__(self, api_login: str, organization_id: str | None = None):
        self.api_login = api_login
        self.organization_id = organization_id

    # --- transport ---------------------------------------------------------------------

    def _post(self, path: str, body: dict[str, Any], token: str | None = None) -> dict[str, Any]:
        PACER.wait(self.api_login, rate())
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            response = http().post(f"{api_url()}{path}", json=body, headers=headers, timeout=_timeout())
        except httpx.TimeoutException as exc:
            raise IikoError(0, f"no answer in time ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise IikoError(0, f"cannot connect ({type(exc).__name__})") from exc
        if response.status_code >= 400:
            raise _error(response)
        try:
            doc = response.json() if response.content else {}
        except ValueError as exc:
            raise IikoError(502, "the answer is not JSON") from exc
        return doc if isinstance(doc, dict) else {"items": doc}

    def token(self, *, fresh: bool = False) -> str:
        now = time.monotonic()
        with _lock:
            cached = _tokens.get(self.api_login)
        if cached and cached[1] > now and not fresh:
            return cached[0]
        doc = self._post("/api/1/access_token", {"apiLogin": self.api_login})
        token = doc.get("token")
        if not isinstance(token, str) or not token:
            raise IikoError(502, "the token endpoint answered without a token")
        with _lock:
            _tokens[self.api_login] = (token, now + TOKEN_TTL)
        return token

    def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            return self._post(path, body, self.token())
        except IikoError as exc:
            if exc.status != 401:
                raise
        return self._post(path, body, self.token(fresh=True))  # expired early: once more

    def _org(self) -> str:
        if not self.organization_id:
            raise IikoError(400, "no organisation chosen")
        return self.organization_id

    # --- methods -----------------------------------------------------------------------

    def organizations(self) -> list[dict[str, str]]:
        doc = self.call("/api/1/organizations", {"returnAdditionalInfo": False, "includeDisabled": False})
        return [
            {"id": str(o["id"]), "name": str(o.get("name") or "")} for o in doc.get("organizations") or []
        ]

    def categories(self) -> list[dict[str, str]]:
        doc = self.call("/api/1/loyalty/iiko/customer_categories", {"organizationId": self._org()})
        return [
            {"id": str(c["id"]), "name": str(c.get("name") or "")} for c in doc.get("guestCategories") or []
        ]

    def programs(self) -> list[dict[str, Any]]:
        doc = self.call("/api/1/loyalty/iiko/program", {"organizationId": self._org()})
        return list(doc.get("Programs") or [])

    def find(self, kind: str, value: str) -> Guest | None:
        """customer/info by phone, cardNumber, cardTrack or id; None when iiko knows none."""
        try:
            doc = self.call(
                "/api/1/loyalty/iiko/customer/info",
                {"organizationId": self._org(), "type": kind, kind: value},
            )
        except IikoError as exc:
            if exc.status == 400 and "there is no user" in exc.description.lower():
                return None
            raise
        return Guest.from_info(doc)

    def create_or_update(self, body: dict[str, Any]) -> str:
        doc = self.call(
            "/api/1/loyalty/iiko/customer/create_or_update", {**body, "organizationId": self._org()}
        )
        return str(doc["id"])

    def add_card(self, customer_id: str, number: str) -> None:
        self.call(
            "/api/1/loyalty/iiko/customer/card/add",
            {
                "customerId": customer_id,
                "cardTrack": number,
                "cardNumber": number,
                "organizationId": self._org(),
            },
        )

    def add_to_program(self, customer_id: str, program_id: str) -> None:
        self.call(
            "/api/1/loyalty/iiko/customer/program/add",
            {"customerId": customer_id, "programId": program_id, "organizationId": self._org()},
        )

    def transactions(
        self,
        customer_id: str,
        since: dt.datetime,
        until: dt.datetime,
        *,
        page_size: int = 100,
        pages: int = 20,
    ) -> Iterator[dict[str, Any]]:
        """The customer's transactions between two UTC moments (the report by period),
        page by page; at most `pages` pages are read."""
        for number in range(pages):
            doc = self.call(
                "/api/1/loyalty/iiko/customer/transactions/by_date",
                {
                    "customerId": customer_id,
                    "dateFrom": _iiko_time(since),
                    "dateTo": _iiko_time(until),
                    "pageNumber": number,
                    "pageSize": page_size,
                    "organizationId": self._org(),
                },
            )
            items = [t for t in doc.get("transactions") or [] if isinstance(t, dict)]
            yield from items
            if len(items) < page_size:
                return

    def topup(self, customer_id: str, wallet_id: str, amount: Decimal, comment: str) -> None:
        self.call(
            "/api/1/loyalty/iiko/customer/wallet/topup",
            {
                "customerId": customer_id,
                "walletId": wallet_id,
                "sum": float(amount),
                "comment": comment,
                "organizationId": self._org(),
            },
        )
