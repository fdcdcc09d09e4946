"""Anti-fraud rules in the checkout: block (fraud_limit, nothing written) or only alert;
alerts in the list and in the owner's Telegram chat; the daily digest; the audit log."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from fakes.telegram import TOKEN, FakeTelegram
from loyalwallet import db
from loyalwallet.cards.models import LedgerEntry
from loyalwallet.checkout.models import Purchase
from loyalwallet.checkout.schemas import PurchaseIn, RefundIn
from loyalwallet.checkout.service import purchase, refund
from loyalwallet.customers.service import phone_index
from loyalwallet.errors import DomainError
from loyalwallet.fraud import service as fraud
from loyalwallet.fraud.models import Digest
from loyalwallet.merchants.actors import Actor
from loyalwallet.merchants.models import Merchant
from loyalwallet.outbox import worker
from loyalwallet.outbox.models import OutboxMessage
from support import Shop, new_shop, random_phone


@pytest.fixture
def tg(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTelegram]:
    fake = FakeTelegram().start()
    monkeypatch.setenv("LOYALWALLET_TELEGRAM_API_URL", fake.url)
    yield fake
    fake.stop()


def _rules(shop: Shop, **rules) -> dict:
    r = shop.call("PUT", "/api/v1/fraud/rules", json=rules)
    assert r.status_code == 200, r.text
    return r.json()["rules"]


def _telegram(shop: Shop, chat: str = "5550001", **extra) -> None:
    r = shop.call("PUT", "/api/v1/alerts/telegram", json={"chat_id": chat, "bot_token": TOKEN, **extra})
    assert r.status_code == 200, r.text


def _alerts(shop: Shop, **query) -> list[dict]:
    r = shop.get("/api/v1/alerts", role="manager", params=query)
    assert r.status_code == 200, r.text
    return r.json()["items"]


def _purchases(shop: Shop) -> int:
    with db.read() as session:
        return int(session.scalar(select(func.count()).where(Purchase.merchant_id == shop.merchant_id)) or 0)


def _staff(shop: Shop, phone: str | None = None, role: str = "cashier", staff_id: int = 7) -> Actor:
    return Actor(
        merchant_id=shop.merchant_id,
        role=role,
        kind="staff",
        id=staff_id,
        phone_index=phone_index(shop.merchant_id, phone) if phone else None,
        name="Barista Olga",
    )


def _staff_buy(actor: Actor, code: str, amount: int) -> dict:
    with db.transaction() as session:
        return purchase(session, actor, PurchaseIn(card=code, amount=amount))[1]


def test_a_blocking_rule_refuses_writes_nothing_and_alerts(shop: Shop, tg: FakeTelegram) -> None:
    _telegram(shop)
    rules = _rules(shop, max_accrual_per_day={"action": "block", "points": 1000})
    assert rules["max_accrual_per_day"] == {"action": "block", "points": 1000}
    assert rules["own_card"] == {"action": "block"}  # the others keep their defaults
    program = shop.program("bonus")
    card = shop.card(program)
    shop.buy(card["code"], 1_200_000)  # 600 points
    before = shop.get(f"/api/v1/cards/{card['code']}").json()
    r = shop.post("/api/v1/purchases", {"card": card["code"], "amount": 1_200_000}, role="cashier")
    assert r.status_code == 429 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "fraud_limit" and r.json()["rule"] == "max_accrual_per_day"
    after = shop.get(f"/api/v1/cards/{card['code']}").json()
    assert (after["balance"], after["visits"]) == (before["balance"], before["visits"])
    assert _purchases(shop) == 1
    [alert] = _alerts(shop)
    assert alert["action"] == "blocked" and alert["rule"] == "max_accrual_per_day"
    assert alert["card"] == card["code"] and alert["amount"] == 1_200_000
    # The same attempt again within minutes: counted, not a new alert nor a new message.
    shop.post("/api/v1/purchases", {"card": card["code"], "amount": 1_200_000}, role="cashier")
    [alert] = _alerts(shop)
    assert alert["count"] == 2
    worker.drain()
    assert len(tg.sent) == 1
    text = tg.sent[0]["text"]
    assert tg.sent[0]["chat_id"] == "5550001" and tg.sent[0]["parse_mode"] == "HTML"
    assert card["code"] in text and "1200" in text.replace("\u00a0", "")
    assert "Заблокировано" in text and "лимит 1000" in text  # the owner's language (ru)
    # Another card the same day is unaffected.
    shop.buy(shop.card(program)["code"], 1_200_000)


def test_an_alert_only_rule_lets_the_purchase_through(shop: Shop, tg: FakeTelegram) -> None:
    _telegram(shop)
    program = shop.program("bonus")
    card = shop.card(program)
    for _ in range(5):
        shop.buy(card["code"], 10_000)
    assert _alerts(shop) == []
    shop.buy(card["code"], 10_000)  # the 6th within the hour: the default rule alerts
    [alert] = _alerts(shop)
    assert alert["rule"] == "max_purchases_per_hour" and alert["action"] == "alerted"
    assert alert["details"] == {"purchases": 6, "limit": 5}
    assert _purchases(shop) == 6
    worker.drain()
    assert len(tg.sent) == 1
    # Acknowledged alerts leave the open list.
    assert shop.get("/api/v1/alerts", role="manager").json()["open"] == 1
    r = shop.post(f"/api/v1/alerts/{alert['id']}/ack", role="manager")
    assert r.status_code == 200 and r.json()["acknowledged_at"]
    assert _alerts(shop, open=True) == []
    assert shop.get("/api/v1/alerts", role="cashier").status_code == 403


def test_redemption_limits(shop: Shop) -> None:
    _rules(
        shop,
        max_redemption_per_day={"action": "block", "points": 300},
        large_redemption={"action": "alert", "points": 250},
    )
    program = shop.program("bonus", {**_bonus(), "max_redeem_pct": 100})
    card = shop.card(program)
    shop.buy(card["code"], 2_000_000)  # 1000 points
    shop.buy(card["code"], 50_000, redeem_points=200)
    assert _alerts(shop) == []
    shop.buy(card["code"], 50_000, redeem_points=100)  # 300 today: at the limit
    r = shop.post(
        "/api/v1/purchases", {"card": card["code"], "amount": 50_000, "redeem_points": 1}, role="cashier"
    )
    assert r.status_code == 429 and r.json()["rule"] == "max_redemption_per_day"
    other = shop.card(program)
    shop.buy(other["code"], 2_000_000)
    shop.buy(other["code"], 50_000, redeem_points=260)
    assert [a["rule"] for a in _alerts(shop, action="alerted")] == ["large_redemption"]


def _bonus() -> dict:
    from support import DEFAULT_RULES

    return dict(DEFAULT_RULES["bonus"])


def test_the_day_is_the_merchants_local_day(shop: Shop) -> None:
    with db.transaction() as session:
        session.execute(
            update(Merchant).where(Merchant.id == shop.merchant_id).values(timezone="Asia/Vladivostok")
        )
    _rules(shop, max_accrual_per_day={"action": "block", "points": 500})
    program = shop.program("bonus")
    card = shop.card(program)
    shop.buy(card["code"], 900_000)  # 450 points
    r = shop.post("/api/v1/purchases", {"card": card["code"], "amount": 900_000}, role="cashier")
    assert r.status_code == 429  # 900 today
    # Move that accrual to one minute before local midnight: it was yesterday.
    with db.transaction() as session:
        merchant = session.get(Merchant, shop.merchant_id)
        assert merchant is not None
        midnight = fraud._local_midnight(merchant, db.utcnow())
        session.execute(
            update(LedgerEntry)
            .where(LedgerEntry.merchant_id == shop.merchant_id, LedgerEntry.kind == "accrual")
            .values(created_at=midnight - dt.timedelta(minutes=1))
        )
    shop.buy(card["code"], 900_000)


def test_refund_rules(shop: Shop) -> None:
    _rules(shop, refund_window={"action": "block", "days": 14}, refund_manager_only={"action": "block"})
    program = shop.program("bonus")
    card = shop.card(program)
    late = shop.buy(card["code"], 10_000)
    fresh = shop.buy(card["code"], 10_000)
    with db.transaction() as session:
        session.execute(
            update(Purchase)
            .where(Purchase.id == late["id"])
            .values(created_at=db.utcnow() - dt.timedelta(days=20))
        )
    r = shop.post(f"/api/v1/purchases/{late['id']}/refunds", {}, role="manager")
    assert r.status_code == 429 and r.json()["rule"] == "refund_window"
    r = shop.post(f"/api/v1/purchases/{fresh['id']}/refunds", {}, role="cashier")
    assert r.status_code == 429 and r.json()["rule"] == "refund_manager_only"
    assert shop.get(f"/api/v1/purchases/{fresh['id']}").json()["refunded_amount"] == 0
    r = shop.post(f"/api/v1/purchases/{fresh['id']}/refunds", {"reason": "cold coffee"}, role="manager")
    assert r.status_code == 201
    assert sorted(a["rule"] for a in _alerts(shop, action="blocked")) == [
        "refund_manager_only",
        "refund_window",
    ]
    # The refund is in the audit log, with who did it.
    entries = shop.get("/api/v1/audit", role="manager", params={"action": "purchase.refund"}).json()["items"]
    assert len(entries) == 1 and entries[0]["target_id"] == str(fresh["id"])
    assert entries[0]["details"]["reason"] == "cold coffee" and entries[0]["actor_type"] == "api_key"


def test_own_card_blocks_or_only_alerts(shop: Shop) -> None:
    program = shop.program("bonus")
    phone = random_phone()
    own = shop.card(program, phone=phone)
    barista = _staff(shop, phone)
    with pytest.raises(DomainError) as err:
        _staff_buy(barista, own["code"], 10_000)
    assert err.value.code == "fraud_limit" and err.value.extra["rule"] == "own_card"
    _staff_buy(barista, shop.card(program)["code"], 10_000)  # someone else's card: fine
    _rules(shop, own_card={"action": "alert"})
    _staff_buy(barista, own["code"], 10_000)
    assert [(a["rule"], a["action"]) for a in _alerts(shop)] == [
        ("own_card", "alerted"),
        ("own_card", "blocked"),
    ]
    assert _alerts(shop)[0]["actor_name"] == "Barista Olga"


def test_many_operations_by_one_cashier(shop: Shop) -> None:
    _rules(shop, cashier_burst={"action": "block", "operations": 3, "minutes": 10})
    program = shop.program("bonus")
    olga, ivan = _staff(shop, staff_id=101), _staff(shop, staff_id=102)
    codes = [shop.card(program)["code"] for _ in range(4)]
    for code in codes[:3]:
        _staff_buy(olga, code, 10_000)
    with pytest.raises(DomainError) as err:
        _staff_buy(olga, codes[3], 10_000)
    assert err.value.extra["rule"] == "cashier_burst"
    # With the clock set back an hour (a backfilled history), the window ends at that
    # moment: Olga's later operations are not in it.
    with db.transaction() as session:
        earlier = db.utcnow() - dt.timedelta(hours=1)
        purchase(session, olga, PurchaseIn(card=codes[3], amount=10_000), now=earlier)
    _staff_buy(ivan, codes[3], 10_000)
    # API keys (a POS till) are not counted as one cashier.
    for code in codes:
        shop.buy(code, 10_000)
    # Refunds count too.
    with db.transaction() as session, pytest.raises(DomainError):
        first = session.scalar(select(Purchase.id).where(Purchase.actor_id == 101))
        refund(session, _staff(shop, role="manager", staff_id=101), first, RefundIn())


def test_bad_rules_and_roles(shop: Shop) -> None:
    for body in (
        {"own_card": {"action": "maybe"}},
        {"max_accrual_per_day": {"action": "block", "points": 0}},
        {"cashier_burst": {"action": "alert", "operations": 10, "minutes": 0}},
        {"no_such_rule": {"action": "block"}},
    ):
        r = shop.call("PUT", "/api/v1/fraud/rules", json=body)
        assert r.status_code == 422 and r.json()["code"] == "validation_error", body
    assert shop.call("PUT", "/api/v1/fraud/rules", role="manager", json={}).status_code == 403
    assert shop.get("/api/v1/fraud/rules", role="manager").status_code == 200
    assert shop.get("/api/v1/alerts/telegram", role="manager").status_code == 403


def test_telegram_settings_test_message_and_errors(shop: Shop, tg: FakeTelegram, client) -> None:
    assert shop.post("/api/v1/alerts/telegram/test").json()["code"] == "conflict"
    r = shop.call("PUT", "/api/v1/alerts/telegram", json={"chat_id": "5550001", "bot_token": "not a token"})
    assert r.status_code == 422
    _telegram(shop)
    view = shop.get("/api/v1/alerts/telegram").json()
    assert view == {
        "chat_id": "5550001",
        "has_own_token": True,
        "has_token": True,
        "alerts": True,
        "digest": True,
        "digest_hour": 9,
    }
    with db.read() as session:
        settings = session.get(Merchant, shop.merchant_id).settings  # type: ignore[union-attr]
    assert TOKEN not in str(settings)  # sealed at rest
    tg.throttle_next = 1
    assert shop.post("/api/v1/alerts/telegram/test").status_code == 202
    worker.drain()
    with db.read() as session:
        [row] = session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.merchant_id == shop.merchant_id, OutboxMessage.topic == "telegram.send"
            )
        ).all()
    assert row.status == "pending" and "429" in (row.last_error or "")
    assert row.next_attempt_at >= db.utcnow() + dt.timedelta(seconds=5)  # retry_after 7 honoured
    with db.transaction() as session:
        session.execute(
            update(OutboxMessage).where(OutboxMessage.id == row.id).values(next_attempt_at=db.utcnow())
        )
    worker.drain()
    assert len(tg.sent) == 1 and "loyalwallet" in tg.sent[0]["text"]

    # A chat that does not exist: no point retrying.
    _telegram(shop, chat="999")
    shop.post("/api/v1/alerts/telegram/test")
    worker.drain()
    with db.read() as session:
        statuses = session.scalars(
            select(OutboxMessage.status).where(
                OutboxMessage.merchant_id == shop.merchant_id, OutboxMessage.topic == "telegram.send"
            )
        ).all()
    assert sorted(statuses) == ["dead", "done"]


def test_daily_digest_once_a_day_after_its_hour(shop: Shop, tg: FakeTelegram) -> None:
    _telegram(shop, digest_hour=9)
    with db.transaction() as session:
        session.execute(
            update(Merchant)
            .where(Merchant.id == shop.merchant_id)
            .values(timezone="Europe/Moscow", name="Digest café")
        )
    program = shop.program("bonus")
    card = shop.card(program)
    bought = shop.buy(card["code"], 50_000)
    shop.post(f"/api/v1/purchases/{bought['id']}/refunds", {"amount": 10_000}, role="manager")

    # The digest of "yesterday" sent the morning after: move the clock of the job.
    def digests() -> int:
        with db.read() as session:
            return int(
                session.scalar(select(func.count()).where(Digest.merchant_id == shop.merchant_id)) or 0
            )

    fraud.send_digests(_moscow(db.utcnow(), days=1, hour=8))
    assert digests() == 0  # before 9:00 local
    tomorrow_10 = _moscow(db.utcnow(), days=1, hour=10)
    fraud.send_digests(tomorrow_10)
    fraud.send_digests(tomorrow_10 + dt.timedelta(hours=3))
    assert digests() == 1  # once a day
    worker.drain()
    mine = [m for m in tg.sent if "Digest café" in m["text"]]
    assert len(mine) == 1
    text = mine[0]["text"]
    assert "500.00" in text and "100.00" in text  # sales and the refund
    preview = shop.get("/api/v1/alerts/digest", role="manager").json()
    assert preview["text"].startswith("<b>")


def _moscow(now: dt.datetime, *, days: int, hour: int) -> dt.datetime:
    from zoneinfo import ZoneInfo

    local = now.astimezone(ZoneInfo("Europe/Moscow")) + dt.timedelta(days=days)
    return local.replace(hour=hour, minute=0, second=0, microsecond=0).astimezone(dt.UTC)


def test_alerts_are_scoped(shop: Shop, client) -> None:
    program = shop.program("bonus")
    card = shop.card(program)
    for _ in range(6):
        shop.buy(card["code"], 10_000)
    [alert] = _alerts(shop)
    other = new_shop(client)
    assert other.get("/api/v1/alerts").json()["items"] == []
    assert other.post(f"/api/v1/alerts/{alert['id']}/ack").status_code == 404
    # The other merchant's audit log has its own set-up only.
    assert {e["action"] for e in other.get("/api/v1/audit").json()["items"]} == {"location.create"}
    assert "program.create" in {e["action"] for e in shop.get("/api/v1/audit").json()["items"]}


def test_the_digest_job_reads_only_merchants_with_an_alert_chat(
    shop: Shop, tg: FakeTelegram, client: TestClient
) -> None:
    """Every 5 minutes the digest job looked at every merchant of the installation (an
    ORM object each: thousands on a big one) to find the few with Telegram set up; it
    reads those only."""
    from sqlalchemy import event

    _telegram(shop, digest_hour=9)
    quiet = new_shop(client)  # no Telegram
    loaded: list[Merchant] = []

    def on_load(target: Merchant, _context: object) -> None:
        loaded.append(target)

    event.listen(Merchant, "load", on_load)
    try:
        fraud.send_digests(_moscow(db.utcnow(), days=1, hour=8))
    finally:
        event.remove(Merchant, "load", on_load)
    ids = {m.id for m in loaded}
    assert shop.merchant_id in ids
    assert quiet.merchant_id not in ids
    assert all(fraud.telegram_settings(m).get("chat_id") for m in loaded)
