"""Webhooks: registered URLs receive signed events through the outbox; a failing URL is
retried, then dead-lettered, and never blocks the purchase."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import select, update

from fakes.http_target import FakeTarget, Recorded
from loyalwallet import db
from loyalwallet.outbox import worker
from loyalwallet.outbox.models import OutboxMessage
from loyalwallet.webhooks.signing import verify
from support import Shop, new_shop


@pytest.fixture
def target() -> Iterator[FakeTarget]:
    t = FakeTarget().start()
    yield t
    t.stop()


def _due_now(merchant_id: int) -> None:
    with db.transaction() as session:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.merchant_id == merchant_id, OutboxMessage.status == "pending")
            .values(next_attempt_at=db.utcnow() - dt.timedelta(seconds=1))
        )


def _deliveries(merchant_id: int) -> list[OutboxMessage]:
    with db.read() as session:
        return list(
            session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.merchant_id == merchant_id, OutboxMessage.topic == "webhook.deliver")
                .order_by(OutboxMessage.id)
            )
        )


def _register(shop: Shop, url: str, events: list[str] | None = None) -> dict:
    r = shop.post("/api/v1/webhooks", {"url": url, "events": events or [], "description": "CRM"})
    assert r.status_code == 201, r.text
    return r.json()


def _check_signature(req: Recorded, secret: str) -> None:
    assert verify(
        secret,
        req.headers["loyalwallet-timestamp"],
        req.body,
        req.headers["loyalwallet-signature"],
        now=time.time(),
    )


def test_events_arrive_signed_and_filtered(shop: Shop, target: FakeTarget) -> None:
    every = _register(shop, target.url + "/all")
    only = _register(shop, target.url + "/purchases", ["purchase.created"])
    assert every["secret"].startswith("whsec_") and every["secret"] != only["secret"]
    listed = shop.get("/api/v1/webhooks").json()["items"]
    assert len(listed) == 2 and all("secret" not in item for item in listed)

    program = shop.program("bonus")
    card = shop.card(program)
    bought = shop.buy(card["code"], 50_000)
    worker.drain()

    got = target.received()
    to_all = [r for r in got if r.path == "/all"]
    to_purchases = [r for r in got if r.path == "/purchases"]
    assert sorted(r.json()["type"] for r in to_all) == ["card.created", "purchase.created"]
    assert [r.json()["type"] for r in to_purchases] == ["purchase.created"]
    for req in to_all:
        _check_signature(req, every["secret"])
    _check_signature(to_purchases[0], only["secret"])
    # A signature made with the other endpoint's secret does not verify.
    assert not verify(
        every["secret"],
        to_purchases[0].headers["loyalwallet-timestamp"],
        to_purchases[0].body,
        to_purchases[0].headers["loyalwallet-signature"],
        now=time.time(),
    )
    event = to_purchases[0].json()
    assert event["data"]["id"] == bought["id"] and event["data"]["card"] == card["code"]
    assert event["id"].startswith("evt_") and event["merchant_id"] == shop.merchant_id
    # Both endpoints saw the same event id: receivers de-duplicate on it.
    same = [r.json()["id"] for r in to_all if r.json()["type"] == "purchase.created"]
    assert same == [event["id"]]
    assert to_purchases[0].headers["loyalwallet-event"] == "purchase.created"
    assert to_purchases[0].headers["loyalwallet-attempt"] == "1"

    view = shop.get(f"/api/v1/webhooks/{only['id']}").json()
    assert view["last_status"] == 200 and view["failures"] == 0
    items = shop.get(f"/api/v1/webhooks/{only['id']}/deliveries").json()["items"]
    assert [(i["event"], i["status"]) for i in items] == [("purchase.created", "done")]


def test_refund_and_tier_change_events(shop: Shop, target: FakeTarget) -> None:
    _register(shop, target.url, ["purchase.refunded", "card.tier_changed"])
    program = shop.program("bonus")
    card = shop.card(program)
    bought = shop.buy(card["code"], 1_200_000)  # crosses the Silver threshold
    r = shop.post(f"/api/v1/purchases/{bought['id']}/refunds", {}, role="manager")
    assert r.status_code == 201, r.text
    worker.drain()
    kinds = [(req.json()["type"], req.json()["data"].get("to")) for req in target.received()]
    assert ("card.tier_changed", "Silver") in kinds
    assert ("card.tier_changed", "Bronze") in kinds
    assert ("purchase.refunded", None) in kinds


def test_a_failing_url_is_retried_then_dead_and_never_blocks_the_purchase(
    shop: Shop, target: FakeTarget
) -> None:
    target.respond = lambda _req: (500, {}, b"boom")
    hook = _register(shop, target.url, ["purchase.created"])
    program = shop.program("bonus")
    card = shop.card(program)
    shop.buy(card["code"], 10_000)  # 201 although the URL is broken
    worker.drain()
    [row] = _deliveries(shop.merchant_id)
    assert row.status == "pending" and row.attempts == 1 and "HTTP 500" in (row.last_error or "")
    assert row.next_attempt_at > db.utcnow()  # backed off
    for _ in range(row.max_attempts):
        _due_now(shop.merchant_id)
        worker.drain()
    [row] = _deliveries(shop.merchant_id)
    assert row.status == "dead" and row.attempts == row.max_attempts
    attempts = [req.headers["loyalwallet-attempt"] for req in target.received()]
    assert attempts == [str(n) for n in range(1, row.max_attempts + 1)]
    assert {req.headers["loyalwallet-delivery"] for req in target.received()} == {str(row.id)}
    view = shop.get(f"/api/v1/webhooks/{hook['id']}").json()
    assert view["failures"] == row.max_attempts and view["last_status"] == 500

    # The dead letter is visible to the admin and can be tried again once fixed.
    dead = shop.get("/api/v1/outbox?status=dead", role="manager").json()
    assert [i["id"] for i in dead["items"]] == [row.id] and dead["dead"] == 1
    assert shop.get("/api/v1/outbox", role="cashier").status_code == 403
    target.respond = lambda _req: (204, {}, b"")
    assert shop.post(f"/api/v1/outbox/{row.id}/retry", role="manager").status_code == 200
    assert shop.post(f"/api/v1/outbox/{row.id}/retry", role="manager").json()["code"] == "conflict"
    worker.drain()
    [row] = _deliveries(shop.merchant_id)
    assert row.status == "done"
    assert shop.get(f"/api/v1/webhooks/{hook['id']}").json()["failures"] == 0


def test_a_url_that_times_out_is_retried(
    shop: Shop, target: FakeTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOYALWALLET_WEBHOOK_TIMEOUT_SECONDS", "0.3")
    release = threading.Event()

    def slow(_req: Recorded) -> tuple[int, dict[str, str], bytes]:
        release.wait(5)
        return 200, {}, b""

    target.respond = slow
    _register(shop, target.url, ["purchase.created"])
    program = shop.program("bonus")
    shop.buy(shop.card(program)["code"], 10_000)
    try:
        worker.drain()
    finally:
        release.set()
    [row] = _deliveries(shop.merchant_id)
    assert row.status == "pending" and row.attempts == 1 and "timeout" in (row.last_error or "")


@pytest.mark.parametrize("status", [400, 410])
def test_a_client_error_is_dead_at_once(shop: Shop, target: FakeTarget, status: int) -> None:
    target.respond = lambda _req: (status, {}, b"no")
    _register(shop, target.url, ["purchase.created"])
    program = shop.program("bonus")
    shop.buy(shop.card(program)["code"], 10_000)
    worker.drain()
    [row] = _deliveries(shop.merchant_id)
    assert row.status == "dead" and row.attempts == 1


def test_429_honours_retry_after(shop: Shop, target: FakeTarget) -> None:
    target.respond = lambda _req: (429, {"Retry-After": "120"}, b"slow down")
    _register(shop, target.url, ["purchase.created"])
    program = shop.program("bonus")
    shop.buy(shop.card(program)["code"], 10_000)
    before = db.utcnow()
    worker.drain()
    [row] = _deliveries(shop.merchant_id)
    assert row.status == "pending"
    assert row.next_attempt_at >= before + dt.timedelta(seconds=119)


def test_ping_rotate_and_switch_off(shop: Shop, target: FakeTarget) -> None:
    hook = _register(shop, target.url)
    assert shop.post(f"/api/v1/webhooks/{hook['id']}/test").status_code == 202
    worker.drain()
    [ping] = target.received()
    assert ping.json()["type"] == "ping"
    _check_signature(ping, hook["secret"])

    new_secret = shop.post(f"/api/v1/webhooks/{hook['id']}/rotate-secret").json()["secret"]
    assert new_secret != hook["secret"]
    shop.post(f"/api/v1/webhooks/{hook['id']}/test")
    worker.drain()
    _check_signature(target.received()[-1], new_secret)

    r = shop.call("PATCH", f"/api/v1/webhooks/{hook['id']}", json={"active": False})
    assert r.status_code == 200 and r.json()["active"] is False
    program = shop.program("bonus")
    shop.buy(shop.card(program)["code"], 10_000)
    worker.drain()
    assert len(target.received()) == 2  # nothing new while switched off
    assert shop.call("DELETE", f"/api/v1/webhooks/{hook['id']}").status_code == 204
    assert shop.get(f"/api/v1/webhooks/{hook['id']}").status_code == 404


def test_bad_input_roles_and_scoping(shop: Shop, client) -> None:
    for body in (
        {"url": "ftp://example.com/hook"},
        {"url": "not a url at all"},
        {"url": "https://example.com/hook", "events": ["purchase.deleted"]},
        {"url": "https://user:pw@example.com/hook"},
    ):
        r = shop.post("/api/v1/webhooks", body)
        assert r.status_code == 422 and r.json()["code"] == "validation_error", body
    assert shop.post("/api/v1/webhooks", {"url": "https://example.com/h"}, role="cashier").status_code == 403
    hook = _register(shop, "https://example.com/hook")
    other = new_shop(client)
    assert other.get(f"/api/v1/webhooks/{hook['id']}").status_code == 404
    assert other.get("/api/v1/webhooks").json()["items"] == []
    assert other.call("DELETE", f"/api/v1/webhooks/{hook['id']}").status_code == 404
