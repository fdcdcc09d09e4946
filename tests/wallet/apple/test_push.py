"""Card changes wake devices through the outbox and APNs (a local HTTP/2 fake)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from fakes.apns import FakeApns
from fakes.wallet_device import Device
from loyalwallet import db
from loyalwallet.cards.models import Card
from loyalwallet.outbox import worker
from loyalwallet.outbox.models import OutboxMessage
from loyalwallet.wallet.apple import apns as apns_client
from loyalwallet.wallet.apple import certs
from loyalwallet.wallet.apple.models import AppleCertificate, ApplePushPending, AppleRegistration
from support import Shop


def _registered(shop: Shop, ptid: str, program: int, device: Device | None = None) -> tuple[Card, Device]:
    code = shop.card(program)["code"]
    with db.read() as session:
        card = session.scalar(select(Card).where(Card.code == code))
        assert card is not None
        session.expunge(card)
    device = device or Device(shop.client)
    assert device.register(ptid, card.serial, card.auth_token).status_code == 201
    return card, device


def _apple_rows(status: str | None = None) -> list[OutboxMessage]:
    with db.read() as session:
        stmt = select(OutboxMessage).where(OutboxMessage.topic == "apple.push")
        if status:
            stmt = stmt.where(OutboxMessage.status == status)
        return list(session.scalars(stmt.order_by(OutboxMessage.id)))


def _registrations(token: str) -> int:
    with db.read() as session:
        return len(
            session.scalars(select(AppleRegistration.id).where(AppleRegistration.push_token == token)).all()
        )


def test_every_kind_of_change_wakes_the_device_once_per_token(
    shop: Shop, apple_cert: AppleCertificate, apns: FakeApns
) -> None:
    ptid = apple_cert.pass_type_id
    program = shop.program("bonus")
    first, phone = _registered(shop, ptid, program)
    second, _ = _registered(shop, ptid, program, phone)  # two passes on one phone
    _, watch = _registered(shop, ptid, program)
    worker.drain()
    apns.reset()

    # Purchase, refund, adjustment: each a push to the phone.
    sale = shop.buy(first.code, 100_000)
    worker.drain()
    assert apns.tokens() == [phone.push_token]
    r = shop.post(f"/api/v1/purchases/{sale['id']}/refunds", {}, role="manager")
    assert r.status_code == 201, r.text
    r = shop.post(f"/api/v1/cards/{first.code}/adjustments", {"points": 5, "reason": "sorry"}, role="manager")
    assert r.status_code == 201, r.text
    worker.drain()
    assert apns.tokens().count(phone.push_token) >= 2

    # A design change touches every card of the program: one push per device token,
    # however many of its passes changed.
    apns.reset()
    r = shop.call("PATCH", f"/api/v1/programs/{program}", "manager", json={"design": {"barcode": "pdf417"}})
    assert r.status_code == 200, r.text
    worker.drain()
    assert sorted(apns.tokens()) == sorted([phone.push_token, watch.push_token])
    assert all(p["topic"] == ptid for p in apns.pushes)
    # Both passes of the phone are reported changed; the pass now has a PDF417 barcode.
    changed = phone.changed(ptid, tag=None)
    assert sorted(changed.json()["serialNumbers"]) == sorted([first.serial, second.serial])
    # One long-lived HTTP/2 connection, one cached provider token.
    assert len(apns.connections) == 1
    assert len({p["auth"] for p in apns.pushes}) == 1
    with db.read() as session:
        assert session.scalars(select(ApplePushPending)).all() == []


def test_a_burst_collapses_into_one_push(shop: Shop, apple_cert: AppleCertificate, apns: FakeApns) -> None:
    program = shop.program("stamp")
    card, phone = _registered(shop, apple_cert.pass_type_id, program)
    worker.drain()
    apns.reset()
    # Three purchases before the worker runs: their card.changed rows queue one push.
    for _ in range(3):
        shop.buy(card.code, 10_000)
    worker.drain()
    assert apns.tokens() == [phone.push_token]


def test_apns_says_the_token_is_gone(shop: Shop, apple_cert: AppleCertificate, apns: FakeApns) -> None:
    ptid = apple_cert.pass_type_id
    program = shop.program("bonus")
    card, phone = _registered(shop, ptid, program)
    card2, tablet = _registered(shop, ptid, program)
    worker.drain()
    apns.answer(phone.push_token, 410, "Unregistered")
    apns.answer(tablet.push_token, 400, "BadDeviceToken")
    shop.buy(card.code, 10_000)
    shop.buy(card2.code, 10_000)
    worker.drain()
    assert _registrations(phone.push_token) == 0
    assert _registrations(tablet.push_token) == 0
    assert not [m for m in _apple_rows() if m.status != "done"]


@pytest.mark.parametrize(
    ("status", "reason"),
    [(500, "InternalServerError"), (429, "TooManyRequests"), (503, "ServiceUnavailable")],
)
def test_apns_trouble_is_retried_with_backoff(
    shop: Shop, apple_cert: AppleCertificate, apns: FakeApns, status: int, reason: str
) -> None:
    program = shop.program("bonus")
    card, phone = _registered(shop, apple_cert.pass_type_id, program)
    worker.drain()
    apns.answer(phone.push_token, status, reason)
    before = {m.id for m in _apple_rows()}
    shop.buy(card.code, 10_000)
    worker.drain()
    row = next(m for m in _apple_rows() if m.id not in before)
    assert row.status == "pending" and row.attempts == 1 and str(status) in (row.last_error or "")
    assert row.next_attempt_at > db.utcnow()
    # When it is due again, it goes through.
    with db.transaction() as session:
        session.execute(
            update(OutboxMessage).where(OutboxMessage.id == row.id).values(next_attempt_at=db.utcnow())
        )
    worker.drain()
    assert next(m for m in _apple_rows() if m.id == row.id).status == "done"
    assert apns.tokens().count(phone.push_token) == 2


def test_certificate_auth_over_mutual_tls(
    tmp_path: Path, dev_root: str, apple_cert: AppleCertificate
) -> None:
    """Without an APNs key the pass certificate itself is the TLS client certificate."""
    from loyalwallet.wallet.apple.credentials import identity_of

    identity = identity_of(apple_cert)
    fake = FakeApns(tmp_path / "fake", client_ca=Path(dev_root), topic=identity.pass_type_id).start()
    try:
        pusher = apns_client.Pusher(
            base_url=fake.url,
            cert=(identity.cert_pem() + identity.chain_pem(), identity.key_pem()),
            ca_file=fake.ca_file,
        )
        result = pusher.push("ab" * 32, identity.pass_type_id)
        assert result.ok, result
        assert fake.pushes[0]["auth"] is None  # no provider token: the certificate is the proof
        pusher.close()
        # Without the certificate, the handshake fails: no answer at all.
        other = certs.development_chain("pass.other.test")
        stranger = apns_client.Pusher(
            base_url=fake.url, cert=(other.cert_pem(), other.key_pem()), ca_file=fake.ca_file
        )
        assert stranger.push("ab" * 32, identity.pass_type_id).status == 0
        stranger.close()
    finally:
        fake.stop()


def test_token_results_are_classified() -> None:
    r = apns_client.PushResult
    assert r("t", 200).ok
    assert r("t", 410, "Unregistered").gone and r("t", 400, "BadDeviceToken").gone
    assert not r("t", 400, "BadTopic").gone and not r("t", 400, "BadTopic").retryable
    assert r("t", 429).retryable and r("t", 500).retryable and r("t", 0).retryable
    assert r("t", 403, "ExpiredProviderToken").retryable


def test_development_passes_are_not_pushed_to_apple(
    monkeypatch: pytest.MonkeyPatch, apple_cert: AppleCertificate
) -> None:
    from loyalwallet.wallet.apple import credentials

    monkeypatch.delenv("LOYALWALLET_APNS_URL", raising=False)
    with db.read() as session:
        route = credentials.push_route(session, apple_cert.pass_type_id)
        assert route is not None and route.pusher is None and "development" in route.reason
        assert credentials.push_route(session, "pass.unknown.type") is None


def test_a_batch_row_pushes_concurrently_and_retries_only_the_failures(
    shop: Shop, apple_cert: AppleCertificate, apns: FakeApns
) -> None:
    from loyalwallet.outbox.service import enqueue

    ptid = apple_cert.pass_type_id
    program = shop.program("bonus")
    phones = [_registered(shop, ptid, program)[1] for _ in range(3)]
    worker.drain()
    apns.reset()
    tokens = [p.push_token for p in phones] + [f"{i:064x}" for i in range(40)]
    apns.answer(tokens[0], 503, "ServiceUnavailable")
    apns.answer(tokens[1], 410, "Unregistered")
    with db.transaction() as session:
        enqueue(session, shop.merchant_id, "apple.push", {"tokens": tokens, "pass_type_id": ptid})
    worker.drain()
    assert sorted(apns.tokens()) == sorted(tokens)
    assert _registrations(tokens[1]) == 0 and _registrations(tokens[0]) == 1
    retry = [m for m in _apple_rows("pending") if m.payload.get("tokens") == [tokens[0]]]
    assert len(retry) == 1 and retry[0].next_attempt_at > db.utcnow()
    with db.transaction() as session:
        session.execute(
            update(OutboxMessage).where(OutboxMessage.id == retry[0].id).values(next_attempt_at=db.utcnow())
        )
    worker.drain()
    assert apns.tokens().count(tokens[0]) == 2


def _rows(topic: str, merchant_id: int, since: int = 0) -> list[OutboxMessage]:
    with db.read() as session:
        return list(
            session.scalars(
                select(OutboxMessage)
                .where(
                    OutboxMessage.topic == topic,
                    OutboxMessage.merchant_id == merchant_id,
                    OutboxMessage.id > since,
                )
                .order_by(OutboxMessage.id)
            )
        )


def _last_row_id() -> int:
    with db.read() as session:
        return int(session.scalar(select(func.max(OutboxMessage.id))) or 0)


def test_a_campaign_chunk_wakes_its_devices_in_one_multiplexed_row(
    shop: Shop, apple_cert: AppleCertificate, apns: FakeApns
) -> None:
    ptid = apple_cert.pass_type_id
    program = shop.program("bonus")
    cards: list[Card] = []
    devices: list[Device] = []
    for _ in range(6):
        code = shop.card(program, marketing_consent=True)["code"]
        with db.read() as session:
            card = session.scalar(select(Card).where(Card.code == code))
            assert card is not None
            session.expunge(card)
        cards.append(card)
        devices.append(Device(shop.client))
    for card, device in zip(cards, devices, strict=True):
        assert device.register(ptid, card.serial, card.auth_token).status_code == 201
    # One phone holds two of the passes: one push wakes it for both.
    phone = devices[0]
    assert phone.register(ptid, cards[1].serial, cards[1].auth_token).status_code == 201
    worker.drain()
    apns.reset()
    apns.answer(devices[5].push_token, 410, "Unregistered")  # an iPhone that dropped the pass
    assert phone.changed(ptid, tag=None).status_code == 200  # the phone is up to date
    assert phone.changed(ptid).status_code == 204
    since = _last_row_id()

    r = shop.post(
        "/api/v1/campaigns",
        {"name": "Autumn", "header": "Pumpkin latte", "body": "Is back", "send_now": True},
        role="manager",
    )
    assert r.status_code == 201, r.text
    worker.drain()

    # One card.changed for the chunk, one apple.push row with every token of its devices.
    [changed] = _rows("card.changed", shop.merchant_id, since)
    assert changed.payload["card_ids"] == sorted(c.id for c in cards)
    assert changed.payload["reason"] == "message"  # no points, no coupon: only the message
    [row] = _rows("apple.push", shop.merchant_id, since)
    tokens = sorted({d.push_token for d in devices})
    assert row.status == "done" and row.payload == {"tokens": tokens, "pass_type_id": ptid}
    # Every device was pushed exactly once, on the one long-lived connection.
    assert sorted(apns.tokens()) == tokens
    assert len(apns.connections) == 1
    # The phone hears that both its passes changed; the gone token lost its registration.
    assert sorted(phone.changed(ptid).json()["serialNumbers"]) == sorted([cards[0].serial, cards[1].serial])
    assert _registrations(devices[5].push_token) == 0
    assert _registrations(devices[4].push_token) == 1
    with db.read() as session:
        assert session.scalars(select(ApplePushPending)).all() == []


def test_tokens_already_queued_are_not_queued_again(
    shop: Shop, apple_cert: AppleCertificate, apns: FakeApns
) -> None:
    from loyalwallet.wallet.apple.handlers import queue_push, queue_pushes

    ptid = apple_cert.pass_type_id
    a, b, c = (f"{i:064x}" for i in (0xA1, 0xB2, 0xC3))
    apns.reset()
    since = _last_row_id()
    with db.transaction() as session:
        assert queue_push(session, shop.merchant_id, a, ptid)
    with db.transaction() as session:
        assert queue_pushes(session, shop.merchant_id, [(c, ptid), (a, ptid), (b, ptid), (c, ptid)]) == [b, c]
        assert queue_pushes(session, shop.merchant_id, [(b, ptid)]) == []  # in this very transaction
    rows = _rows("apple.push", shop.merchant_id, since)
    assert [r.payload for r in rows] == [
        {"token": a, "pass_type_id": ptid},
        {"tokens": [b, c], "pass_type_id": ptid},
    ]
    worker.drain()
    assert sorted(apns.tokens()) == [a, b, c]
    # Once a push has started, a new change queues a new push.
    with db.transaction() as session:
        assert queue_pushes(session, shop.merchant_id, [(a, ptid), (b, ptid)]) == [a, b]
    worker.drain()
    assert sorted(apns.tokens()) == [a, a, b, b, c]
