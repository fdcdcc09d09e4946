"""Test helpers shared by every test module (fixtures live in conftest.py)."""

from __future__ import annotations

import socket
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi.testclient import TestClient

from loyalwallet import db


@dataclass
class Shop:
    """A fresh merchant with keys for each role, and a client to call the API as one."""

    client: TestClient
    merchant_id: int
    keys: dict[str, str]
    programs: dict[str, int] = field(default_factory=dict)
    location_id: int | None = None

    def headers(self, role: str = "owner", **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}", **extra}

    def call(
        self, method: str, path: str, role: str = "owner", headers: dict[str, str] | None = None, **kw: Any
    ) -> httpx.Response:
        return self.client.request(method, path, headers={**self.headers(role), **(headers or {})}, **kw)

    def post(self, path: str, json: Any = None, role: str = "owner", **kw: Any) -> httpx.Response:
        return self.call("POST", path, role, json=json, **kw)

    def get(self, path: str, role: str = "owner", **kw: Any) -> httpx.Response:
        return self.call("GET", path, role, **kw)

    def program(
        self, kind: str = "bonus", rules: dict[str, Any] | None = None, name: str | None = None
    ) -> int:
        r = self.post(
            "/api/v1/programs",
            {"kind": kind, "name": name or f"{kind} program", "rules": rules or DEFAULT_RULES[kind]},
        )
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    def card(self, program_id: int, phone: str | None = None, **extra: Any) -> dict[str, Any]:
        phone = phone or random_phone()
        r = self.post("/api/v1/cards", {"program_id": program_id, "phone": phone, **extra}, role="cashier")
        assert r.status_code in (200, 201), r.text
        return dict(r.json())

    def buy(
        self, code: str, amount: int, key: str | None = None, expect: int = 201, **extra: Any
    ) -> dict[str, Any]:
        headers = {"Idempotency-Key": key} if key else {}
        r = self.post(
            "/api/v1/purchases", {"card": code, "amount": amount, **extra}, role="cashier", headers=headers
        )
        assert r.status_code == expect, r.text
        return dict(r.json())


DEFAULT_RULES: dict[str, dict[str, Any]] = {
    "bonus": {
        "tiers": [
            {"name": "Bronze", "min_spend": 0, "cashback_pct": 5},
            {"name": "Silver", "min_spend": 1_000_000, "cashback_pct": 10},
        ],
        "max_redeem_pct": 50,
    },
    "discount": {
        "tiers": [
            {"name": "Base", "min_spend": 0, "discount_pct": 5},
            {"name": "VIP", "min_spend": 500_000, "discount_pct": 10},
        ]
    },
    "stamp": {"stamps_required": 6},
}

_phone_counter = iter(range(10**6))


def random_phone() -> str:
    """A valid Moscow mobile number, different on every call within a run."""
    n = (uuid.uuid4().int % 9_000_000) + next(_phone_counter)
    return f"+7916{n % 10_000_000:07d}"


def new_shop(client: TestClient, name: str = "Test café") -> Shop:
    from loyalwallet.merchants.actors import system
    from loyalwallet.merchants.service import create_api_key, create_location, create_merchant

    with db.transaction() as session:
        merchant = create_merchant(session, name)
        location = create_location(session, system(merchant.id), "Main")
        keys = {
            role: create_api_key(session, merchant.id, role, role)[1]
            for role in ("owner", "manager", "cashier")
        }
        return Shop(client=client, merchant_id=merchant.id, keys=keys, location_id=location.id)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
