"""Bad input: a clear problem+json error with a stable code, and nothing written."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from loyalwallet import db
from loyalwallet.cards.models import Card, LedgerEntry
from loyalwallet.checkout.models import IdempotencyRecord, Purchase
from loyalwallet.outbox.models import OutboxMessage
from support import Shop


def counts(merchant_id: int) -> dict[str, int]:
    with db.read() as session:
        return {
            model.__tablename__: session.scalar(
                select(func.count()).select_from(model).where(model.merchant_id == merchant_id)
            )
            or 0
            for model in (Card, LedgerEntry, Purchase, IdempotencyRecord, OutboxMessage)
        }


def assert_problem(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["code"] == code
    assert {"type", "title", "status", "detail", "code"} <= set(body)
    assert body["status"] == status and body["detail"]
    return dict(body)


@pytest.fixture
def card(shop: Shop) -> str:
    pid = shop.program(
        "bonus",
        {
            "tiers": [{"name": "A", "min_spend": 0, "cashback_pct": 5}],
            "welcome_points": 100,
            "max_redeem_pct": 50,
        },
    )
    return str(shop.card(pid)["code"])


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"card": "0000000000000", "amount": 1000}, 404, "not_found"),
        ({"card": "CARD", "amount": 0}, 422, "validation_error"),
        ({"card": "CARD", "amount": -100}, 422, "validation_error"),
        ({"card": "CARD", "amount": 350.5}, 422, "validation_error"),
        # 350.0 is the integer 350 (JSON Schema's reading, tests/hardening/test_document.py); a fraction is refused.
        ({"card": "CARD", "amount": 350.25}, 422, "validation_error"),
        ({"card": "CARD", "amount": "35000"}, 422, "validation_error"),
        ({"card": "CARD", "amount": True}, 422, "validation_error"),
        ({"card": "CARD"}, 422, "validation_error"),
        ({"card": "CARD", "amount": 10_000, "redeem_points": 101}, 422, "insufficient_points"),
        ({"card": "CARD", "amount": 10_000, "redeem_points": 51}, 422, "redeem_limit_exceeded"),
        ({"card": "CARD", "amount": 10_000, "redeem_points": -1}, 422, "validation_error"),
        ({"card": "CARD", "amount": 10_000, "items": [{"price": 5_000, "qty": 1}]}, 422, "validation_error"),
        ({"card": "CARD", "amount": 10_000, "coupon": "NOPE"}, 422, "coupon_invalid"),
        ({"card": "CARD", "amount": 10_000, "surprise": 1}, 422, "validation_error"),
    ],
)
def test_bad_purchases_write_nothing(shop: Shop, card: str, body: dict, status: int, code: str) -> None:
    body = {k: (card if v == "CARD" else v) for k, v in body.items()}
    before = counts(shop.merchant_id)
    r = shop.post("/api/v1/purchases", body, role="cashier", headers={"Idempotency-Key": "k-bad"})
    assert_problem(r, status, code)
    assert counts(shop.merchant_id) == before


def test_malformed_json(shop: Shop, card: str) -> None:
    before = counts(shop.merchant_id)
    r = shop.call(
        "POST",
        "/api/v1/purchases",
        "cashier",
        content=b'{"card": "x", "amount": ',
        headers={"Content-Type": "application/json"},
    )
    body = assert_problem(r, 400, "bad_request")
    assert "JSON" in body["detail"]
    assert counts(shop.merchant_id) == before


@pytest.mark.parametrize(
    "header", [None, "Bearer lw_not_a_real_key", "Bearer ", "Basic Zm9vOmJhcg==", "lw_raw"]
)
def test_missing_or_wrong_api_key(shop: Shop, card: str, header: str | None) -> None:
    before = counts(shop.merchant_id)
    headers = {} if header is None else {"Authorization": header}
    r = shop.client.post("/api/v1/purchases", json={"card": card, "amount": 1000}, headers=headers)
    assert_problem(r, 401, "unauthorized")
    assert counts(shop.merchant_id) == before


def test_revoked_key(shop: Shop, card: str) -> None:
    r = shop.post("/api/v1/api-keys", {"name": "till 2", "role": "cashier"})
    key = r.json()["api_key"]
    assert (
        shop.client.get(f"/api/v1/cards/{card}", headers={"Authorization": f"Bearer {key}"}).status_code
        == 200
    )
    assert shop.call("DELETE", f"/api/v1/api-keys/{r.json()['id']}").status_code == 200
    assert_problem(
        shop.client.get(f"/api/v1/cards/{card}", headers={"Authorization": f"Bearer {key}"}),
        401,
        "unauthorized",
    )


@pytest.mark.parametrize("phone", ["123", "hello", "+7 000 000", "", "8" * 40])
def test_phone_that_is_not_a_phone(shop: Shop, phone: str) -> None:
    pid = shop.program("stamp")
    before = counts(shop.merchant_id)
    r = shop.post("/api/v1/cards", {"program_id": pid, "phone": phone}, role="cashier")
    assert_problem(r, 422, "validation_error")
    assert counts(shop.merchant_id) == before


def test_unknown_program_and_bad_rules(shop: Shop) -> None:
    assert_problem(
        shop.post("/api/v1/cards", {"program_id": 999_999, "phone": "+79161234567"}), 404, "not_found"
    )
    body = assert_problem(
        shop.post("/api/v1/programs", {"kind": "bonus", "name": "x", "rules": {"tiers": []}}),
        422,
        "validation_error",
    )
    assert body["errors"][0]["loc"][:2] == ["rules", "tiers"]
    assert_problem(
        shop.post("/api/v1/programs", {"kind": "bonus", "name": "x", "rules": {}}, role="cashier"),
        403,
        "forbidden",
    )


def test_refund_errors(shop: Shop, card: str) -> None:
    assert_problem(shop.post("/api/v1/purchases/999999/refunds", {}), 404, "not_found")
    p = shop.buy(card, 10_000)
    before = counts(shop.merchant_id)
    assert_problem(
        shop.post(f"/api/v1/purchases/{p['id']}/refunds", {"amount": 10_001}), 422, "refund_exceeds_purchase"
    )
    assert_problem(shop.post(f"/api/v1/purchases/{p['id']}/refunds", {"amount": 0}), 422, "validation_error")
    assert_problem(
        shop.post(f"/api/v1/purchases/{p['id']}/refunds", {"amount": 5.5}), 422, "validation_error"
    )
    assert counts(shop.merchant_id) == before


def test_unknown_route_is_problem_json(shop: Shop) -> None:
    assert_problem(shop.get("/api/v1/nothing-here"), 404, "not_found")


def test_check_ledger_is_clean_after_all_this(shop: Shop) -> None:
    from loyalwallet.cards.sweeps import check_ledger

    with db.read() as session:
        assert check_ledger(session) == []
