"""The certificate spend's fast path (certificates/fast.py) gives the same answers and
writes the same rows as the general path (certificates.service.redeem), on PostgreSQL;
on SQLite the route is the general path.

Two merchants get the same certificates, brought to the same states, and the same spends;
one is served with the fast path on, the other with it off. Their answers, certificate
entries, balances, outbox rows, stored answers and fraud alerts must be equal up to ids,
codes and clocks.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from loyalwallet import db
from loyalwallet.certificates import fast
from loyalwallet.certificates.ledger import check_ledger
from loyalwallet.certificates.models import CertificateEntry, GiftCertificate
from loyalwallet.checkout.models import IdempotencyRecord
from loyalwallet.fraud.models import Alert
from loyalwallet.outbox.models import OutboxMessage
from support import Shop, new_shop

PG_URL = os.environ.get("LOYALWALLET_TEST_DATABASE_URL")
pg_only = pytest.mark.skipif(not PG_URL, reason="the fast path runs on PostgreSQL only")

# A certificate before the spends: its balance (sold, then partly spent by the general
# path) and its state.
certificates = st.lists(
    st.fixed_dictionaries(
        {
            "amount": st.integers(1, 20_000),
            "spent": st.sampled_from([0, 0, 0, 1, 500]),
            "state": st.sampled_from(["active", "active", "active", "never", "expired", "void"]),
        }
    ),
    min_size=1,
    max_size=3,
)
# A spend: which certificate (len = another merchant's, len + 1 = no such code), the body
# (a bad one now and then), the key (reused: replays and conflicts).
spends = st.lists(
    st.fixed_dictionaries(
        {
            "cert": st.integers(0, 4),
            "amount": st.one_of(st.integers(1, 25_000), st.sampled_from([0, -5, "100", None])),
            "key": st.sampled_from([None, None, "k1", "k2", "k3"]),
        },
        optional={
            "external_id": st.text("abc123", min_size=1, max_size=8),
            "location": st.booleans(),
        },
    ),
    min_size=1,
    max_size=10,
)
fraud_limits = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {"action": st.sampled_from(["off", "alert", "block"]), "amount": st.sampled_from([1, 3_000, 10_000])}
    ),
)

NOW = dt.datetime.now(dt.UTC)


def _strip(value: Any) -> Any:
    """The answer without what differs between two merchants or two moments."""
    drop = {
        "id",
        "code",
        "code_display",
        "created_at",
        "expires_at",
        "web_url",
        "pdf_url",
        "apple_pass_url",
        "location_id",
        "expired_at",
    }
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in drop}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _rows(merchant_id: int) -> dict[str, Any]:
    with db.read() as s:
        certs = s.scalars(
            select(GiftCertificate)
            .where(GiftCertificate.merchant_id == merchant_id)
            .order_by(GiftCertificate.id)
        ).all()
        index = {c.id: i for i, c in enumerate(certs)}
        certificates = [
            (c.initial_amount, c.balance, c.status, c.expires_at is None, c.location_id is None)
            for c in certs
        ]
        entries = [
            (
                index[e.certificate_id],
                e.kind,
                e.amount,
                e.purchase_id,
                e.spend_id is None,
                e.location_id is None,
                e.external_id,
                e.actor_type,
            )
            for e in s.scalars(
                select(CertificateEntry)
                .where(CertificateEntry.merchant_id == merchant_id)
                .order_by(CertificateEntry.id)
            )
        ]
        outbox = []
        for m in s.scalars(
            select(OutboxMessage).where(OutboxMessage.merchant_id == merchant_id).order_by(OutboxMessage.id)
        ):
            payload = dict(m.payload)
            payload.pop("at", None)
            if isinstance(payload.get("data"), dict):
                payload["data"] = {
                    k: v for k, v in payload["data"].items() if k not in ("id", "spend_id", "certificate")
                }
            outbox.append((m.topic, m.status, m.attempts, m.max_attempts, m.priority, payload))
        stored = [
            (r.scope.split(":")[0], r.key, r.status_code, _strip(r.response), r.expires_at is None)
            for r in s.scalars(
                select(IdempotencyRecord)
                .where(IdempotencyRecord.merchant_id == merchant_id)
                .order_by(IdempotencyRecord.id)
            )
        ]
        alerts = [
            (a.rule, a.action, a.operation, a.amount, a.actor_type, a.count)
            for a in s.scalars(select(Alert).where(Alert.merchant_id == merchant_id).order_by(Alert.id))
        ]
    return {
        "certificates": certificates,
        "entries": entries,
        "outbox": outbox,
        "stored": stored,
        "alerts": alerts,
    }


def _prepare(shop: Shop, states: list[dict[str, Any]], limit: dict[str, Any] | None) -> list[str]:
    """The certificates, each brought to its drawn state (general path)."""
    codes = []
    for state in states:
        r = shop.post("/api/v1/certificates", {"amount": state["amount"]}, role="cashier")
        assert r.status_code == 201, r.text
        code = r.json()["code"]
        codes.append(code)
        if state["spent"] and state["spent"] < state["amount"]:
            r = shop.post(
                f"/api/v1/certificates/{code}/redemptions", {"amount": state["spent"]}, role="cashier"
            )
            assert r.status_code == 201, r.text
        if state["state"] == "void":
            r = shop.post(f"/api/v1/certificates/{code}/void", {"reason": "lost it"}, role="manager")
            assert r.status_code == 200, r.text
        elif state["state"] in ("expired", "never"):
            with db.transaction() as s:
                cert = s.scalar(
                    select(GiftCertificate).where(
                        GiftCertificate.merchant_id == shop.merchant_id, GiftCertificate.code == code
                    )
                )
                assert cert is not None
                # Past its date but not swept yet (the general path says expired all the same).
                cert.expires_at = None if state["state"] == "never" else NOW - dt.timedelta(minutes=1)
    if limit is not None:
        r = shop.call(
            "PUT", "/api/v1/fraud/rules", json={"max_certificate_spend_per_day": limit}, role="owner"
        )
        assert r.status_code == 200, r.text
    return codes


def _run(
    shop: Shop,
    states: list[dict[str, Any]],
    bodies: list[dict[str, Any]],
    limit: dict[str, Any] | None,
    foreign: str,
    on: bool,
) -> list[Any]:
    fast.ENABLED = False
    try:
        codes = [*_prepare(shop, states, limit), foreign, "GAAAABBBBCCCCDDD"]
        fast.ENABLED = on
        answers = []
        for spend in bodies:
            body: dict[str, Any] = {"amount": spend["amount"]}
            if "external_id" in spend:
                body["external_id"] = spend["external_id"]
            if spend.get("location"):
                body["location_id"] = shop.location_id
            i = spend["cert"]
            code = codes[i] if i < len(states) else codes[len(states) + (i - len(states)) % 2]
            headers = {"Idempotency-Key": spend["key"]} if spend["key"] else {}
            r = shop.post(f"/api/v1/certificates/{code}/redemptions", body, role="cashier", headers=headers)
            assert r.status_code < 500, r.text
            if r.status_code >= 400:
                assert r.headers["content-type"].startswith("application/problem+json")
            answers.append((r.status_code, r.headers.get("Idempotent-Replayed"), _strip(r.json())))
        return answers
    finally:
        fast.ENABLED = True


def _same(got: Any, expected: Any) -> None:
    """got == expected; FAST_PATH_DUMP=file.json keeps both when they differ (to diff)."""
    if got != expected and os.environ.get("FAST_PATH_DUMP"):
        import json

        with open(os.environ["FAST_PATH_DUMP"], "w") as f:
            json.dump({"got": got, "expected": expected}, f, indent=1, default=str)
    assert got == expected


@settings(
    max_examples=int(os.environ.get("FAST_PATH_EXAMPLES", "30")),
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # each example is slow to shrink
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(states=certificates, bodies=spends, limit=fraud_limits)
def test_fast_and_general_paths_agree(
    client: Any, states: list[dict[str, Any]], bodies: list[dict[str, Any]], limit: dict[str, Any] | None
) -> None:
    general, quick, other = new_shop(client), new_shop(client), new_shop(client)
    foreign = other.post("/api/v1/certificates", {"amount": 50_000}, role="cashier").json()["code"]
    for shop in (general, quick):
        # Fill the per-process cache of API keys as any server has it after its first use.
        assert shop.get(f"/api/v1/certificates/{foreign}", role="cashier").status_code == 404
    served = fast.SERVED["fast"]
    expected = _run(general, states, bodies, limit, foreign, on=False)
    assert fast.SERVED["fast"] == served
    got = _run(quick, states, bodies, limit, foreign, on=True)
    _same(got, expected)
    _same(_rows(quick.merchant_id), _rows(general.merchant_id))
    if PG_URL and (limit is None or limit["action"] == "off"):
        # Every spend that succeeded (not a replay, no location in the body) was fast.
        done = sum(
            1
            for (status, replayed, _), spend in zip(got, bodies, strict=True)
            if status == 201 and replayed is None and not spend.get("location")
        )
        assert fast.SERVED["fast"] - served == done, fast.FELL_BACK


@pg_only
def test_the_everyday_spend_is_served_fast(shop: Shop, caplog: Any) -> None:
    """A spend with a key and its retry: the first goes through the fast path, the retry
    is the stored answer (from statement 1); the same key with another body, more than
    the balance, an expired, a foreign certificate: problem+json from the general path,
    nothing written."""
    cert = shop.post("/api/v1/certificates", {"amount": 10_000}, role="cashier").json()
    code = cert["code"]
    path = f"/api/v1/certificates/{code}/redemptions"
    shop.get(f"/api/v1/certificates/{code}", role="cashier")  # the key's cache
    before = dict(fast.SERVED)
    first = shop.post(path, {"amount": 2_500}, role="cashier", headers={"Idempotency-Key": "s1"})
    assert first.status_code == 201, first.text
    assert fast.SERVED["fast"] == before["fast"] + 1, fast.FELL_BACK
    assert first.json()["certificate"]["balance"] == 7_500 and first.json()["amount"] == 2_500
    again = shop.post(path, {"amount": 2_500}, role="cashier", headers={"Idempotency-Key": "s1"})
    assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true"
    assert again.json() == first.json() and fast.SERVED["replay"] == before["replay"] + 1
    other = shop.post(path, {"amount": 1}, role="cashier", headers={"Idempotency-Key": "s1"})
    assert other.status_code == 409 and other.json()["code"] == "idempotency_conflict"
    assert other.headers["content-type"].startswith("application/problem+json")
    over = shop.post(path, {"amount": 7_501}, role="cashier")
    assert over.status_code == 422 and over.json()["code"] == "certificate_insufficient"
    bad = shop.post(path, {"amount": "100"}, role="cashier")
    assert bad.status_code == 422
    foreign = new_shop(shop.client).post("/api/v1/certificates", {"amount": 100}, role="cashier").json()
    alien = shop.post(f"/api/v1/certificates/{foreign['code']}/redemptions", {"amount": 1}, role="cashier")
    assert alien.status_code == 404 and alien.json()["code"] == "not_found"
    plain = shop.post(path, {"amount": 500}, role="cashier")
    assert plain.status_code == 201 and fast.SERVED["fast"] == before["fast"] + 2
    entries = shop.get(f"/api/v1/certificates/{code}/entries").json()["items"]
    assert [(e["kind"], e["amount"]) for e in entries] == [
        ("spend", -500),
        ("spend", -2_500),
        ("issue", 10_000),
    ]
    assert shop.get(f"/api/v1/certificates/{code}").json()["balance"] == 7_000
    with db.read() as s:
        assert check_ledger(s) == []
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


def _fire(url: str, key: str, path: str, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    barrier = threading.Barrier(len(bodies))

    def one(i: int) -> httpx.Response:
        with httpx.Client(base_url=url, timeout=120) as c:
            barrier.wait()
            return c.post(
                path, json=bodies[i], headers={"Authorization": f"Bearer {key}", "Idempotency-Key": f"f-{i}"}
            )

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(one, range(len(bodies))))


def test_fifty_concurrent_spends_of_one_certificate(shop: Shop, live_server: Any) -> None:
    """Fifty spends at once, all by the spend route (the fast path on PostgreSQL, the
    general path for those that lose the race): the balance never goes below zero, each
    success saw its own balance, the ledger holds."""
    cert = shop.post("/api/v1/certificates", {"amount": 10_000}, role="cashier").json()
    path = f"/api/v1/certificates/{cert['code']}/redemptions"
    shop.get(f"/api/v1/certificates/{cert['code']}", role="cashier")  # the key's cache
    before = fast.SERVED["fast"]
    results = _fire(live_server.url, shop.keys["cashier"], path, [{"amount": 700}] * 50)
    ok = [r for r in results if r.status_code == 201]
    assert len(ok) == 10_000 // 700
    assert {r.json()["code"] for r in results if r.status_code != 201} == {"certificate_insufficient"}
    assert sorted(r.json()["certificate"]["balance"] for r in ok) == [
        10_000 - 700 * i for i in range(14, 0, -1)
    ]
    assert shop.get(f"/api/v1/certificates/{cert['code']}").json()["balance"] == 10_000 - 700 * 14
    if PG_URL:
        # Each spend that saw the row another changed meanwhile was answered by the
        # general path (which locks); at least the first one was fast.
        assert 1 <= fast.SERVED["fast"] - before <= len(ok), fast.FELL_BACK
    with db.read() as s:
        assert check_ledger(s) == []


def test_concurrent_spends_respect_the_daily_limit(shop: Shop, live_server: Any) -> None:
    """The daily limit counts the spends that committed after the fast path read what was
    spent today (its write requires the certificate's row unchanged since that read)."""
    r = shop.call(
        "PUT",
        "/api/v1/fraud/rules",
        json={"max_certificate_spend_per_day": {"action": "block", "amount": 3_000}},
        role="owner",
    )
    assert r.status_code == 200, r.text
    cert = shop.post("/api/v1/certificates", {"amount": 100_000}, role="cashier").json()
    path = f"/api/v1/certificates/{cert['code']}/redemptions"
    shop.get(f"/api/v1/certificates/{cert['code']}", role="cashier")
    results = _fire(live_server.url, shop.keys["cashier"], path, [{"amount": 700}] * 20)
    ok = [r for r in results if r.status_code == 201]
    assert len(ok) == 3_000 // 700
    assert {r.json()["code"] for r in results if r.status_code != 201} == {"fraud_limit"}
    assert shop.get(f"/api/v1/certificates/{cert['code']}").json()["balance"] == 100_000 - 700 * len(ok)
    with db.read() as s:
        assert check_ledger(s) == []
