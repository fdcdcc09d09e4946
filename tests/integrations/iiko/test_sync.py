"""Cards that follow iiko: order webhooks, reconciliation, outages, gifts credited in iiko."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from fakes.iiko import order_event
from fakes.wallet_device import open_pkpass
from integrations.iiko.conftest import IikoShop
from loyalwallet import db
from loyalwallet.campaigns.delivery import message_card
from loyalwallet.cards.book import lock_card
from loyalwallet.cards.sweeps import check_ledger
from loyalwallet.integrations.iiko import handlers
from loyalwallet.integrations.iiko.models import IikoConnection, IikoTopup
from loyalwallet.outbox import worker
from loyalwallet.outbox.models import OutboxMessage
from loyalwallet.wallet.apple import credentials
from support import random_phone


def _join(ishop: IikoShop) -> tuple[dict[str, Any], Any]:
    phone = random_phone()
    r = ishop.shop.post("/api/v1/cards", {"program_id": ishop.program_id, "phone": phone})
    assert r.status_code == 201, r.text
    guest = ishop.fake.by_phone(phone)
    assert guest is not None
    worker.drain()
    return r.json(), guest


def _webhook(ishop: IikoShop, events: list[dict[str, Any]], token: str | None = None) -> Any:
    with db.read() as session:
        conn = session.scalar(select(IikoConnection).where(IikoConnection.merchant_id == ishop.merchant_id))
        assert conn is not None
        token = token or conn.webhook_token
    return ishop.shop.client.post(
        f"/integrations/iiko/{ishop.merchant_id}/webhook", json=events, headers={"Authorization": token}
    )


def _card(ishop: IikoShop, code: str) -> dict[str, Any]:
    return ishop.shop.get(f"/api/v1/cards/{code}").json()


def _rows(merchant_id: int, topic: str) -> list[OutboxMessage]:
    with db.read() as session:
        return list(
            session.scalars(
                select(OutboxMessage).where(
                    OutboxMessage.merchant_id == merchant_id, OutboxMessage.topic == topic
                )
            )
        )


def test_a_closed_iiko_order_updates_the_card_and_its_pass(ishop: IikoShop) -> None:
    with db.transaction() as session:  # passes are signed with the development certificate (as the demo does)
        credentials.ensure_development_certificate(session)
    card, guest = _join(ishop)
    ishop.fake.order_closed(guest, 240, category="Золото")
    r = _webhook(ishop, [order_event(ishop.fake, customer=guest)])
    assert r.status_code == 200 and r.json() == {"synced": 1, "orders": 0}
    worker.drain()
    after = _card(ishop, card["code"])
    assert after["balance"] == 240 and after["tier"] == "Gold"
    changed = [m for m in _rows(ishop.merchant_id, "card.changed") if m.payload.get("reason") == "iiko"]
    assert changed and all(m.status == "done" for m in changed)  # heard by the Apple and Google listeners
    pj = open_pkpass(ishop.shop.client.get(card["apple_pass_url"]).content).pass_json
    fields = {f["key"]: f for part in pj["storeCard"].values() if isinstance(part, list) for f in part}
    assert fields["balance"]["value"] == 240 and "%@" in fields["balance"]["changeMessage"]
    assert fields["tier"]["value"] == "Gold"
    assert pj["barcodes"][0]["message"] == card["code"]  # iikoFront scans the iiko card number
    with db.read() as session:
        assert [p for p in check_ledger(session) if p.get("code") == card["code"]] == []


def test_a_webhook_with_a_wrong_token_is_refused(ishop: IikoShop) -> None:
    _, guest = _join(ishop)
    r = _webhook(ishop, [order_event(ishop.fake, customer=guest)], token="wrong")
    assert r.status_code == 401 and r.json()["code"] == "unauthorized"
    assert _rows(ishop.merchant_id, "iiko.sync") == []


def test_iiko_down_keeps_the_last_values_and_the_outbox_retries(ishop: IikoShop) -> None:
    card, guest = _join(ishop)
    ishop.fake.order_closed(guest, 100)
    ishop.fake.fail("/api/1/loyalty/iiko/customer/info", 503, times=1)
    assert _webhook(ishop, [order_event(ishop.fake, customer=guest)]).status_code == 200
    worker.drain()
    assert _card(ishop, card["code"])["balance"] == 0  # the last value, kept
    rows = _rows(ishop.merchant_id, "iiko.sync")
    assert rows[-1].status == "pending" and rows[-1].attempts == 1  # waits for its backoff
    with db.read() as session:
        conn = session.scalar(select(IikoConnection).where(IikoConnection.merchant_id == ishop.merchant_id))
        assert conn is not None and conn.state == "error"
        assert conn.last_error and "iikoCloud failed on its side; the worker keeps trying" in conn.last_error
    with db.transaction() as session:  # the backoff has passed
        row = session.get(OutboxMessage, rows[-1].id)
        assert row is not None
        row.next_attempt_at = row.created_at
    worker.drain()
    assert _card(ishop, card["code"])["balance"] == 100  # nothing lost
    with db.read() as session:
        conn = session.scalar(select(IikoConnection).where(IikoConnection.merchant_id == ishop.merchant_id))
        assert conn is not None and conn.state == "ok" and conn.last_error is None


def test_reconciliation_reads_every_card_in_bounded_batches(ishop: IikoShop, monkeypatch: Any) -> None:
    cards = [_join(ishop) for _ in range(3)]
    for _, guest in cards:
        ishop.fake.order_closed(guest, 50)
    monkeypatch.setenv("LOYALWALLET_IIKO_SYNC_BATCH", "2")
    assert handlers.reconcile() >= 2
    worker.drain()
    balances = [_card(ishop, c["code"])["balance"] for c, _g in cards]
    assert sorted(balances) == [0, 50, 50]  # two per run
    handlers.reconcile()
    worker.drain()
    assert [_card(ishop, c["code"])["balance"] for c, _g in cards] == [
        50,
        50,
        50,
    ]  # the least recently synced next


def test_a_campaign_gift_is_one_topup_in_iiko_even_when_retried(ishop: IikoShop) -> None:
    card, guest = _join(ishop)
    ishop.fake.fail("/api/1/loyalty/iiko/customer/wallet/topup", 502, times=1)
    for _ in range(2):  # the campaign chunk delivered twice (at least once)
        with db.transaction() as session:
            locked, program = lock_card(session, ishop.merchant_id, card["code"])
            message_card(
                session,
                locked,
                program,
                header="Подарок",
                body="100 бонусов",
                message_id=f"campaign-9-{locked.id}",
                source="campaign",
                source_id=9,
                points=100,
            )
    worker.drain()  # the first topup meets iiko's 502
    rows = _rows(ishop.merchant_id, "iiko.topup")
    assert len(rows) == 1 and rows[0].status == "pending"
    with db.transaction() as session:
        row = session.get(OutboxMessage, rows[0].id)
        assert row is not None
        row.next_attempt_at = row.created_at
    worker.drain()
    assert len(ishop.fake.topups) == 1
    topup = ishop.fake.topups[0]
    assert topup["sum"] == 100 and topup["customerId"] == guest.id and "campaign-9-" in topup["comment"]
    assert _card(ishop, card["code"])["balance"] == 100  # read back from iiko, not credited by us
    with db.read() as session:
        op = session.scalar(select(IikoTopup).where(IikoTopup.merchant_id == ishop.merchant_id))
        assert op is not None and op.state == "done"
    # The same delivery handled again sends nothing.
    handlers._topup(ishop.merchant_id, op.operation_id)
    assert len(ishop.fake.topups) == 1


def test_a_topup_iiko_applied_before_timing_out_is_not_sent_again(ishop: IikoShop, monkeypatch: Any) -> None:
    """iiko credits the gift but its answer comes after our timeout: the retry finds the
    operation id in iiko's transaction report and sends nothing again."""
    card, guest = _join(ishop)
    monkeypatch.setenv("LOYALWALLET_IIKO_TIMEOUT", "0.5")
    path = "/api/1/loyalty/iiko/customer/wallet/topup"
    ishop.fake.hang_after_applying(path, 1.5)
    with db.transaction() as session:
        locked, program = lock_card(session, ishop.merchant_id, card["code"])
        message_card(
            session,
            locked,
            program,
            header="Подарок",
            body="100 бонусов",
            message_id=f"campaign-11-{locked.id}",
            source="campaign",
            source_id=11,
            points=100,
        )
    worker.drain()  # iiko applies it; we hear nothing in time
    assert len(ishop.fake.topups) == 1
    rows = _rows(ishop.merchant_id, "iiko.topup")
    assert len(rows) == 1 and rows[0].status == "pending"  # to be retried
    with db.transaction() as session:
        row = session.get(OutboxMessage, rows[0].id)
        assert row is not None
        row.next_attempt_at = row.created_at
    worker.drain()
    assert len(ishop.fake.topups) == 1  # not sent twice
    assert "/api/1/loyalty/iiko/customer/transactions/by_date" in ishop.fake.paths()
    assert _card(ishop, card["code"])["balance"] == 100
    with db.read() as session:
        op = session.scalar(select(IikoTopup).where(IikoTopup.merchant_id == ishop.merchant_id))
        assert op is not None and op.state == "done"
    assert guest.balances[ishop.fake.wallet_id] == 100
