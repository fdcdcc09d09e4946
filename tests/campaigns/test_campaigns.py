"""Segments and push campaigns: who is reached, what each card gets, delivery stats,
scheduling, and the effect against a holdout group."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, update

from loyalwallet import db
from loyalwallet.cards.models import Card, Coupon, LedgerEntry
from loyalwallet.outbox import handlers, worker
from loyalwallet.outbox.models import OutboxMessage
from support import Shop


def _card(shop: Shop, program: int, consent: bool = True, **extra) -> dict:
    return shop.card(program, marketing_consent=consent, **extra)


def _set(code: str, merchant_id: int, **values) -> None:
    with db.transaction() as session:
        session.execute(
            update(Card).where(Card.merchant_id == merchant_id, Card.code == code).values(**values)
        )


def _db_card(shop: Shop, code: str) -> Card:
    with db.read() as session:
        return session.scalars(
            select(Card).where(Card.merchant_id == shop.merchant_id, Card.code == code)
        ).one()


def _count(shop: Shop, segment: dict) -> int:
    r = shop.post("/api/v1/segments/preview", {"segment": segment}, role="manager")
    assert r.status_code == 200, r.text
    return int(r.json()["count"])


def _topic_rows(shop: Shop, topic: str) -> list[OutboxMessage]:
    with db.read() as session:
        return list(
            session.scalars(
                select(OutboxMessage).where(
                    OutboxMessage.merchant_id == shop.merchant_id, OutboxMessage.topic == topic
                )
            )
        )


def test_segments(shop: Shop) -> None:
    bonus, stamp = shop.program("bonus"), shop.program("stamp")
    today = dt.date.today()
    soon = (today + dt.timedelta(days=3)).replace(year=1992)
    a = _card(shop, bonus, birthday=soon.isoformat(), channel="instagram")
    b = _card(shop, bonus)
    _card(shop, stamp, channel="instagram")
    _card(shop, bonus, consent=False)
    shop.buy(a["code"], 2_000_000)  # 1000 points (5 %), and now Silver
    shop.buy(b["code"], 10_000)
    shop.buy(b["code"], 10_000)
    _set(b["code"], shop.merchant_id, last_visit_at=db.utcnow() - dt.timedelta(days=45))

    assert _count(shop, {}) == 3
    assert (
        shop.post("/api/v1/segments/preview", {"segment": {}}, role="manager").json()["without_consent"] == 1
    )
    assert _count(shop, {"program_ids": [stamp]}) == 1
    assert _count(shop, {"tiers": ["Silver"]}) == 1
    assert _count(shop, {"balance": {"min": 1000}}) == 1
    assert _count(shop, {"visits": {"min": 2}}) == 1
    assert _count(shop, {"spend": {"min": 1_000_000}}) == 1
    assert _count(shop, {"last_visit_days": {"min": 30}}) == 1
    assert _count(shop, {"last_visit_days": {"max": 30}}) == 1
    assert _count(shop, {"never_visited": True}) == 1
    assert _count(shop, {"birthday_in_days": 5}) == 1
    assert _count(shop, {"birthday_in_days": 1}) == 0
    assert _count(shop, {"channels": ["instagram"]}) == 2
    assert _count(shop, {"channels": ["instagram"], "program_ids": [bonus]}) == 1
    assert _count(shop, {"rfm": ["no_visits"]}) == 1
    assert _count(shop, {"joined_days": {"max": 1}}) == 3
    rfm = shop.get("/api/v1/segments/rfm", role="manager").json()["segments"]
    assert sum(rfm.values()) == 4 and rfm["no_visits"] == 2  # c, and the guest without consent
    named = [name for name, n in rfm.items() if n and name != "no_visits"]
    assert _count(shop, {"rfm": named}) == 2

    bad = shop.post(
        "/api/v1/segments/preview", {"segment": {"balance": {"min": 5, "max": 1}}}, role="manager"
    )
    assert bad.status_code == 422 and bad.json()["code"] == "validation_error"
    bad = shop.post("/api/v1/segments/preview", {"segment": {"rfm": ["whales"]}}, role="manager")
    assert bad.status_code == 422
    assert shop.post("/api/v1/segments/preview", {"segment": {}}, role="cashier").status_code == 403


def test_a_campaign_to_an_empty_segment_is_refused(shop: Shop) -> None:
    bonus = shop.program("bonus")
    _card(shop, bonus, consent=False)
    r = shop.post(
        "/api/v1/campaigns",
        {"name": "Hello", "header": "Hi", "body": "Come by", "send_now": True},
        role="manager",
    )
    assert r.status_code == 422 and r.json()["code"] == "segment_empty"
    assert shop.get("/api/v1/campaigns", role="manager").json()["items"] == []  # nothing written
    draft = shop.post(
        "/api/v1/campaigns", {"name": "Later", "header": "Hi", "body": "Yo"}, role="manager"
    ).json()
    assert draft["status"] == "draft"
    r = shop.post(f"/api/v1/campaigns/{draft['id']}/send", role="manager")
    assert r.status_code == 422 and r.json()["code"] == "segment_empty"
    r = shop.post(
        "/api/v1/campaigns",
        {"name": "x", "header": "Hi", "body": "Yo", "segment": {"marketing_consent": False}},
        role="manager",
    )
    assert r.status_code == 422 and r.json()["code"] == "validation_error"


def test_send_now_with_points_and_a_coupon(shop: Shop) -> None:
    bonus, stamp = shop.program("bonus"), shop.program("stamp")
    cards = [_card(shop, bonus) for _ in range(3)] + [_card(shop, stamp)]
    blocked = _card(shop, bonus)
    outsider = _card(shop, bonus, consent=False)
    offer = shop.post(
        "/api/v1/offers", {"name": "Free cookie", "kind": "free_item", "valid_days": 14}, role="manager"
    )
    r = shop.post(
        "/api/v1/campaigns",
        {
            "name": "Spring",
            "header": "Spring menu",
            "body": "Try the lavender latte: 50 points and a cookie are on your card",
            "points": 50,
            "offer_id": offer.json()["id"],
        },
        role="manager",
    )
    assert r.status_code == 201, r.text
    campaign = r.json()
    assert (
        shop.call(
            "PATCH", f"/api/v1/campaigns/{campaign['id']}", role="manager", json={"name": "Spring!"}
        ).json()["name"]
        == "Spring!"
    )
    assert (
        shop.call(
            "PATCH", f"/api/v1/cards/{blocked['code']}", role="manager", json={"status": "blocked"}
        ).status_code
        == 200
    )
    sent = shop.post(f"/api/v1/campaigns/{campaign['id']}/send", role="manager")
    assert sent.status_code == 200 and sent.json()["status"] == "sending"
    assert shop.post(f"/api/v1/campaigns/{campaign['id']}/send", role="manager").json()["code"] == "conflict"
    worker.drain()

    view = shop.get(f"/api/v1/campaigns/{campaign['id']}", role="manager").json()
    assert view["status"] == "sent" and view["recipients"] == 4 and view["holdout"] == 0
    assert view["stats"]["sent"] == 4 and view["stats"]["failed"] == 0
    assert view["stats"]["google_delivered"] == 0  # none of these guests is in Google Wallet
    for card in cards:
        row = _db_card(shop, card["code"])
        assert row.message.startswith("Try the lavender latte") and row.message_at is not None
        shown = shop.get(f"/api/v1/cards/{card['code']}").json()
        assert [c["name"] for c in shown["rewards"]] == ["Free cookie"]
    assert shop.get(f"/api/v1/cards/{cards[0]['code']}").json()["balance"] == 50
    assert shop.get(f"/api/v1/cards/{cards[3]['code']}").json()["balance"] == 0  # stamp card: no points
    for other in (blocked, outsider):
        assert _db_card(shop, other["code"]).message is None
    with db.read() as session:
        kinds = session.scalars(
            select(LedgerEntry.kind)
            .join(Card, Card.id == LedgerEntry.card_id)
            .where(Card.code == cards[0]["code"])
        ).all()
    assert "campaign" in kinds
    # The chunk's cards changed together: one card.changed row for all four (points or a
    # coupon on each, so not a message-only touch).
    changed = [r.payload for r in _topic_rows(shop, "card.changed") if r.payload.get("reason") == "campaign"]
    assert changed == [
        {"card_ids": sorted(_db_card(shop, c["code"]).id for c in cards), "reason": "campaign"}
    ]
    versions = [_db_card(shop, c["code"]).version for c in cards]

    # Delivered twice by the worker (at-least-once) the chunk does nothing the 2nd time.
    with db.transaction() as session:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.merchant_id == shop.merchant_id, OutboxMessage.topic == "campaign.deliver")
            .values(status="pending", next_attempt_at=db.utcnow())
        )
    worker.drain()
    assert shop.get(f"/api/v1/cards/{cards[0]['code']}").json()["balance"] == 50
    assert [_db_card(shop, c["code"]).version for c in cards] == versions
    assert len([r for r in _topic_rows(shop, "card.changed") if r.payload.get("reason") == "campaign"]) == 1
    with db.read() as session:
        assert (
            session.query(Coupon)
            .filter(Coupon.source == "campaign", Coupon.source_id == campaign["id"])
            .count()
            == 4
        )
    recipients = shop.get(f"/api/v1/campaigns/{campaign['id']}/recipients", role="manager").json()["items"]
    assert sorted(r["card"] for r in recipients) == sorted(c["code"] for c in cards)


def test_google_messages_wait_for_their_handler(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(handlers.HANDLERS, "google.message", raising=False)
    bonus = shop.program("bonus")
    _card(shop, bonus)
    shop.post(
        "/api/v1/campaigns", {"name": "x", "header": "H", "body": "B", "send_now": True}, role="manager"
    )
    worker.drain()
    assert _topic_rows(shop, "google.message") == []


def test_holdout_and_effect(shop: Shop) -> None:
    bonus = shop.program("bonus")
    cards = [_card(shop, bonus) for _ in range(30)]
    r = shop.post(
        "/api/v1/campaigns",
        {"name": "Test", "header": "H", "body": "B", "holdout_pct": 40, "send_now": True},
        role="manager",
    )
    campaign = r.json()
    worker.drain()
    recipients = shop.get(f"/api/v1/campaigns/{campaign['id']}/recipients", role="manager").json()["items"]
    held = {r["card"] for r in recipients if r["holdout"]}
    got = {r["card"] for r in recipients if not r["holdout"]}
    assert held and got and len(held) + len(got) == 30
    for code in held:
        assert _db_card(shop, code).message is None
    # Two recipients and one holdout guest buy within the week.
    for code in sorted(got)[:2]:
        shop.buy(code, 30_000)
    shop.buy(sorted(held)[0], 10_000)
    view = shop.get(f"/api/v1/campaigns/{campaign['id']}", role="manager").json()
    effect = view["effect"]
    assert effect["recipients"]["guests"] == len(got) and effect["recipients"]["buyers"] == 2
    assert effect["recipients"]["revenue"] == 60_000
    assert effect["holdout"]["guests"] == len(held) and effect["holdout"]["buyers"] == 1
    assert effect["recipients"]["conversion_bp"] == 2 * 10000 // len(got)
    assert effect["uplift_bp"] == effect["recipients"]["conversion_bp"] - effect["holdout"]["conversion_bp"]
    assert effect["complete"] is False
    assert view["stats"]["holdout"] == len(held)
    assert len(cards) == 30


def test_scheduled_rescheduled_and_cancelled(shop: Shop) -> None:
    bonus = shop.program("bonus")
    card = _card(shop, bonus)
    later = (db.utcnow() + dt.timedelta(hours=2)).isoformat()
    r = shop.post(
        "/api/v1/campaigns",
        {"name": "Eve", "header": "H", "body": "Evening", "scheduled_at": later},
        role="manager",
    )
    assert r.status_code == 201 and r.json()["status"] == "scheduled"
    cid = r.json()["id"]
    worker.drain()
    assert shop.get(f"/api/v1/campaigns/{cid}", role="manager").json()["status"] == "scheduled"
    # Rescheduled sooner; then the time comes (we move the clock of the rows instead).
    sooner = (db.utcnow() + dt.timedelta(hours=1)).isoformat()
    assert (
        shop.post(f"/api/v1/campaigns/{cid}/schedule", {"scheduled_at": sooner}, role="manager").status_code
        == 200
    )
    past = shop.post(
        f"/api/v1/campaigns/{cid}/schedule", {"scheduled_at": "2020-01-01T00:00:00+00:00"}, role="manager"
    )
    assert past.status_code == 422
    with db.transaction() as session:
        from loyalwallet.campaigns.models import Campaign

        session.execute(
            update(Campaign)
            .where(Campaign.id == cid)
            .values(scheduled_at=db.utcnow() - dt.timedelta(seconds=1))
        )
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.merchant_id == shop.merchant_id, OutboxMessage.topic == "campaign.start")
            .values(next_attempt_at=db.utcnow())
        )
    worker.drain()
    view = shop.get(f"/api/v1/campaigns/{cid}", role="manager").json()
    assert view["status"] == "sent" and view["stats"]["sent"] == 1  # two start rows, one sending
    assert _db_card(shop, card["code"]).message == "Evening"

    other = shop.post(
        "/api/v1/campaigns",
        {"name": "Never", "header": "H", "body": "No", "scheduled_at": later},
        role="manager",
    ).json()
    assert (
        shop.post(f"/api/v1/campaigns/{other['id']}/cancel", role="manager").json()["status"] == "cancelled"
    )
    with db.transaction() as session:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.merchant_id == shop.merchant_id, OutboxMessage.status == "pending")
            .values(next_attempt_at=db.utcnow())
        )
    worker.drain()
    assert shop.get(f"/api/v1/campaigns/{other['id']}", role="manager").json()["status"] == "cancelled"
    assert _db_card(shop, card["code"]).message == "Evening"
    assert (
        shop.call("PATCH", f"/api/v1/campaigns/{cid}", role="manager", json={"body": "x"}).json()["code"]
        == "conflict"
    )


def test_campaigns_are_scoped_and_need_a_manager(shop: Shop, client) -> None:
    from support import new_shop

    bonus = shop.program("bonus")
    _card(shop, bonus)
    c = shop.post("/api/v1/campaigns", {"name": "x", "header": "H", "body": "B"}, role="manager").json()
    assert shop.get("/api/v1/campaigns", role="cashier").status_code == 403
    other = new_shop(client)
    assert other.get(f"/api/v1/campaigns/{c['id']}").status_code == 404
    assert other.post(f"/api/v1/campaigns/{c['id']}/send").status_code == 404


def _delivery(row: OutboxMessage) -> handlers.Delivery:
    """What the worker hands a handler for this row, on its first attempt."""
    return handlers.Delivery(
        row.id, row.merchant_id, row.topic, row.payload, 1, row.created_at, row.max_attempts, row.priority
    )


def _run_rows(shop: Shop, topic: str, limit: int | None = None) -> int:
    """Run this merchant's pending rows of one topic (at most `limit`), as the worker
    would, and mark them done; the other rows stay queued."""
    with db.read() as session:
        rows = list(
            session.scalars(
                select(OutboxMessage)
                .where(
                    OutboxMessage.merchant_id == shop.merchant_id,
                    OutboxMessage.topic == topic,
                    OutboxMessage.status == "pending",
                )
                .order_by(OutboxMessage.id)
                .limit(limit)
            )
        )
    for row in rows:
        handlers.HANDLERS[topic](_delivery(row))
        with db.transaction() as session:
            session.execute(update(OutboxMessage).where(OutboxMessage.id == row.id).values(status="done"))
    return len(rows)


def test_recipients_are_written_by_the_chunks(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    """campaign.start draws the holdout and queues the chunks; each chunk writes its own
    recipient rows. Until every chunk ran, the stats count the rest as pending (or in the
    holdout group) and the campaign is still sending."""
    from loyalwallet.campaigns import service as campaigns_service
    from loyalwallet.campaigns.models import CampaignRecipient

    monkeypatch.setattr(campaigns_service, "MESSAGE_CHUNK", 3)
    bonus = shop.program("bonus")
    cards = [_card(shop, bonus) for _ in range(12)]
    worker.drain()
    r = shop.post(
        "/api/v1/campaigns",
        {"name": "Test", "header": "H", "body": "B", "holdout_pct": 30, "send_now": True},
        role="manager",
    )
    campaign = r.json()
    assert _run_rows(shop, "campaign.start") == 1
    view = shop.get(f"/api/v1/campaigns/{campaign['id']}", role="manager").json()
    assert view["status"] == "sending" and view["recipients"] + view["holdout"] == 12
    assert view["stats"]["pending"] == view["recipients"] and view["stats"]["holdout"] == view["holdout"]
    with db.read() as session:
        assert session.query(CampaignRecipient).filter_by(campaign_id=campaign["id"]).count() == 0
    assert _run_rows(shop, "campaign.deliver", limit=1) == 1
    view = shop.get(f"/api/v1/campaigns/{campaign['id']}", role="manager").json()
    assert view["status"] == "sending"
    assert view["stats"]["sent"] == 3 and view["stats"]["pending"] == view["recipients"] - 3
    assert view["stats"]["holdout"] == view["holdout"]
    worker.drain()
    view = shop.get(f"/api/v1/campaigns/{campaign['id']}", role="manager").json()
    assert view["status"] == "sent"
    assert view["stats"]["sent"] == view["recipients"] and view["stats"]["pending"] == 0
    assert view["stats"]["holdout"] == view["holdout"]
    recipients = shop.get(f"/api/v1/campaigns/{campaign['id']}/recipients", role="manager").json()["items"]
    assert sorted(x["card"] for x in recipients) == sorted(c["code"] for c in cards)
    for x in recipients:
        assert (_db_card(shop, x["card"]).message == "B") is (not x["holdout"])


def test_a_retried_message_only_chunk_messages_nobody_twice(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chunk's recipient rows are written "sent" in the transaction that messages the
    cards: delivered again (at-least-once), it touches no card and queues nothing."""
    from loyalwallet.campaigns import service as campaigns_service

    monkeypatch.setattr(campaigns_service, "MESSAGE_CHUNK", 2)
    bonus = shop.program("bonus")
    cards = [_card(shop, bonus) for _ in range(5)]
    worker.drain()
    r = shop.post(
        "/api/v1/campaigns", {"name": "T", "header": "H", "body": "B", "send_now": True}, role="manager"
    )
    campaign = r.json()
    worker.drain()
    versions = [_db_card(shop, c["code"]).version for c in cards]
    changed = len(_topic_rows(shop, "card.changed"))
    with db.transaction() as session:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.merchant_id == shop.merchant_id, OutboxMessage.topic == "campaign.deliver")
            .values(status="pending", next_attempt_at=db.utcnow())
        )
    worker.drain()
    assert [_db_card(shop, c["code"]).version for c in cards] == versions
    assert len(_topic_rows(shop, "card.changed")) == changed
    view = shop.get(f"/api/v1/campaigns/{campaign['id']}", role="manager").json()
    assert view["status"] == "sent" and view["stats"]["sent"] == 5 and view["stats"]["pending"] == 0


def test_a_campaign_whose_start_wrote_pending_rows_is_delivered(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A campaign started before the chunks wrote their own rows (its start wrote every
    recipient "pending", its chunks carry no "held"): the chunks still message each card
    once and mark it."""
    from loyalwallet.campaigns import service as campaigns_service
    from loyalwallet.campaigns.models import CampaignRecipient

    monkeypatch.setattr(campaigns_service, "MESSAGE_CHUNK", 2)
    bonus = shop.program("bonus")
    cards = [_card(shop, bonus) for _ in range(3)]
    worker.drain()
    r = shop.post(
        "/api/v1/campaigns", {"name": "T", "header": "H", "body": "B", "send_now": True}, role="manager"
    )
    campaign = r.json()
    _run_rows(shop, "campaign.start")
    with db.transaction() as session:
        for card in cards:
            session.add(
                CampaignRecipient(
                    merchant_id=shop.merchant_id,
                    campaign_id=campaign["id"],
                    card_id=_db_card(shop, card["code"]).id,
                    holdout=False,
                    status="pending",
                )
            )
    worker.drain()
    view = shop.get(f"/api/v1/campaigns/{campaign['id']}", role="manager").json()
    assert view["status"] == "sent" and view["stats"]["sent"] == 3 and view["stats"]["pending"] == 0
    assert all(_db_card(shop, c["code"]).message == "B" for c in cards)


def test_two_chunks_at_once_do_not_deadlock(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL: each chunk's recipient insert holds KEY SHARE on the campaign row (its
    foreign key); the finish check's lock must not wait for it (FOR NO KEY UPDATE), or two
    chunks past their inserts would deadlock. Both chunks pass their inserts before either
    takes the lock."""
    import threading

    from loyalwallet.campaigns import service as campaigns_service

    if db.is_sqlite():
        pytest.skip("SQLite runs one write transaction at a time")
    monkeypatch.setattr(campaigns_service, "MESSAGE_CHUNK", 2)
    bonus = shop.program("bonus")
    for _ in range(4):
        _card(shop, bonus)
    worker.drain()
    r = shop.post(
        "/api/v1/campaigns", {"name": "T", "header": "H", "body": "B", "send_now": True}, role="manager"
    )
    campaign = r.json()
    _run_rows(shop, "campaign.start")
    with db.read() as session:
        rows = list(
            session.scalars(
                select(OutboxMessage).where(
                    OutboxMessage.merchant_id == shop.merchant_id, OutboxMessage.topic == "campaign.deliver"
                )
            )
        )
    assert len(rows) == 2
    both_inserted = threading.Barrier(2, timeout=30)
    write = campaigns_service.write_recipients

    def write_then_wait(*args, **kwargs):  # type: ignore[no-untyped-def]
        out = write(*args, **kwargs)
        both_inserted.wait()
        return out

    monkeypatch.setattr(campaigns_service, "write_recipients", write_then_wait)
    errors: list[BaseException] = []

    def run(row: OutboxMessage) -> None:
        try:
            handlers.HANDLERS["campaign.deliver"](_delivery(row))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(row,)) for row in rows]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    view = shop.get(f"/api/v1/campaigns/{campaign['id']}", role="manager").json()
    assert view["status"] == "sent" and view["stats"]["sent"] == 4
