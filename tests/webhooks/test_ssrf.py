"""The SSRF guard of webhooks: only public addresses over https, checked at registration
and again when each delivery connects (after DNS, so rebinding cannot get through)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from fakes.http_target import FakeTarget
from loyalwallet import db
from loyalwallet.outbox import worker
from loyalwallet.outbox.models import OutboxMessage
from loyalwallet.webhooks.guard import address_problem
from support import Shop

PUBLIC = "93.184.215.14"  # a literal public address: resolving it needs no DNS


@pytest.fixture
def strict(monkeypatch: pytest.MonkeyPatch) -> None:
    """The production defaults: https only, public addresses only."""
    monkeypatch.delenv("LOYALWALLET_WEBHOOK_ALLOW_PRIVATE")
    monkeypatch.delenv("LOYALWALLET_WEBHOOK_ALLOW_HTTP")


@pytest.fixture
def target() -> Iterator[FakeTarget]:
    t = FakeTarget().start()
    yield t
    t.stop()


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "non-public"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("2002:7f00:1::", "loopback"),  # 6to4 around 127.0.0.1
        ("64:ff9b::a00:1", "private"),  # NAT64 around 10.0.0.1
        (PUBLIC, None),
        ("::ffff:93.184.215.14", None),
        ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", None),
    ],
)
def test_address_classes(address: str, problem: str | None) -> None:
    assert address_problem(ipaddress.ip_address(address)) == problem


@pytest.mark.usefixtures("strict")
@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("https://127.0.0.1/hook", "webhook_url_forbidden"),
        ("https://localhost:8443/hook", "webhook_url_forbidden"),
        ("https://10.0.0.5/hook", "webhook_url_forbidden"),
        ("https://169.254.169.254/latest/meta-data", "webhook_url_forbidden"),
        ("https://0.0.0.0/hook", "webhook_url_forbidden"),
        ("https://224.0.0.1/hook", "webhook_url_forbidden"),
        ("https://[::1]/hook", "webhook_url_forbidden"),
        ("https://[::ffff:127.0.0.1]/hook", "webhook_url_forbidden"),
        ("https://[fe80::1]/hook", "webhook_url_forbidden"),
        ("https://2130706433/hook", "webhook_url_forbidden"),  # 127.0.0.1 as one number
        ("https://no-such-host.invalid/hook", "webhook_url_unresolvable"),
        (f"http://{PUBLIC}/hook", "webhook_url_insecure"),
        ("ftp://example.com/hook", "validation_error"),
        (f"https://user:pw@{PUBLIC}/hook", "validation_error"),
        ("gopher://127.0.0.1:6379/_", "validation_error"),
    ],
)
def test_registration_refuses_non_public_targets(shop: Shop, url: str, code: str) -> None:
    r = shop.post("/api/v1/webhooks", {"url": url})
    assert r.status_code == 422 and r.json()["code"] == code, r.text
    assert r.json()["field"] == "url"
    assert shop.get("/api/v1/webhooks").json()["items"] == []  # nothing written


@pytest.mark.usefixtures("strict")
def test_a_public_https_url_is_accepted_and_patching_is_checked_too(shop: Shop) -> None:
    r = shop.post("/api/v1/webhooks", {"url": f"https://{PUBLIC}/hook"})
    assert r.status_code == 201, r.text
    hook = r.json()
    r = shop.call("PATCH", f"/api/v1/webhooks/{hook['id']}", json={"url": "https://127.0.0.1/x"})
    assert r.status_code == 422 and r.json()["code"] == "webhook_url_forbidden"
    assert shop.get(f"/api/v1/webhooks/{hook['id']}").json()["url"] == f"https://{PUBLIC}/hook"


def _rows(merchant_id: int) -> list[OutboxMessage]:
    with db.read() as session:
        return list(
            session.scalars(
                select(OutboxMessage).where(
                    OutboxMessage.merchant_id == merchant_id, OutboxMessage.topic == "webhook.deliver"
                )
            )
        )


def test_a_delivery_to_a_private_address_is_refused_at_send_time(
    shop: Shop, target: FakeTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Registered while private targets were allowed; the setting is off by delivery time.
    r = shop.post("/api/v1/webhooks", {"url": target.url + "/hook", "events": ["purchase.created"]})
    assert r.status_code == 201, r.text
    hook = r.json()
    monkeypatch.setenv("LOYALWALLET_WEBHOOK_ALLOW_PRIVATE", "0")
    shop.buy(shop.card(shop.program("bonus"))["code"], 10_000)
    worker.drain()
    [row] = _rows(shop.merchant_id)
    assert row.status == "dead" and row.attempts == 1
    assert "refused" in (row.last_error or "") and "loopback" in (row.last_error or "")
    assert target.received() == []
    view = shop.get(f"/api/v1/webhooks/{hook['id']}").json()
    assert view["last_status"] is None and "loopback" in view["last_error"]


def test_http_is_refused_at_send_time_once_it_is_no_longer_allowed(
    shop: Shop, target: FakeTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop.post("/api/v1/webhooks", {"url": target.url, "events": ["purchase.created"]})
    monkeypatch.setenv("LOYALWALLET_WEBHOOK_ALLOW_HTTP", "0")
    shop.buy(shop.card(shop.program("bonus"))["code"], 10_000)
    worker.drain()
    [row] = _rows(shop.merchant_id)
    assert row.status == "dead" and "https" in (row.last_error or "")
    assert target.received() == []


def test_dns_rebinding_is_caught_when_the_delivery_connects(
    shop: Shop, target: FakeTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The name resolves to a public address at registration and to 127.0.0.1 when the
    delivery connects: the delivery is refused and the fake on 127.0.0.1 hears nothing."""
    monkeypatch.delenv("LOYALWALLET_WEBHOOK_ALLOW_PRIVATE")
    real = socket.getaddrinfo
    answers = iter([PUBLIC, "127.0.0.1"])

    def rebinding_dns(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "rebind.example":
            return real(next(answers), port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding_dns)
    port = target.url.rsplit(":", 1)[1]
    r = shop.post("/api/v1/webhooks", {"url": f"http://rebind.example:{port}/hook", "events": []})
    assert r.status_code == 201, r.text
    assert shop.post(f"/api/v1/webhooks/{r.json()['id']}/test").status_code == 202
    worker.drain()
    [row] = _rows(shop.merchant_id)
    assert row.status == "dead" and "127.0.0.1" in (row.last_error or "")
    assert target.received() == []


def test_a_name_resolving_to_an_allowed_address_is_delivered_to_that_address(
    shop: Shop, target: FakeTarget
) -> None:
    """With private targets allowed (the tests' setting) a host name still works: the guard
    resolves it and connects to the address it resolved."""
    port = target.url.rsplit(":", 1)[1]
    shop.post("/api/v1/webhooks", {"url": f"http://localhost:{port}/named", "events": []})
    hook = shop.get("/api/v1/webhooks").json()["items"][0]
    shop.post(f"/api/v1/webhooks/{hook['id']}/test")
    worker.drain()
    [req] = target.received()
    assert req.path == "/named" and req.headers["host"] == f"localhost:{port}"
