"""The snapshot job follows change: only merchants whose cards changed are recomputed,
and a snapshot left alone stays right as the days pass (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient
from sqlalchemy import select, update

from loyalwallet import db
from loyalwallet.analytics import queries, service, snapshot
from loyalwallet.analytics.models import RollupState
from loyalwallet.cards.models import Card
from loyalwallet.merchants.actors import Actor
from support import Shop, new_shop

BONUS = {"tiers": [{"name": "Base", "min_spend": 0, "cashback_pct": 5}]}


def _board(shop: Shop) -> service.Dashboard:
    actor = Actor(merchant_id=shop.merchant_id, role="manager", kind="staff")
    with db.read() as session:
        return service.dashboard(session, actor, service.filters_for(session, actor, None, None, None, None))


def _catch_up() -> None:
    while snapshot.refresh_changed(settle=dt.timedelta(0)):
        pass


def _taken(merchant_id: int) -> dt.datetime | None:
    with db.read() as session:
        return session.scalar(
            select(RollupState.updated_at).where(RollupState.name == f"snapshot:{merchant_id}")
        )


def test_only_merchants_with_changes_are_refreshed(shop: Shop, client: TestClient) -> None:
    idle = new_shop(client, "Idle café")
    busy_program = shop.program("bonus", BONUS)
    idle_program = idle.program("bonus", BONUS)
    code = shop.card(busy_program)["code"]
    idle.card(idle_program)
    _catch_up()
    idle_taken, busy_taken = _taken(idle.merchant_id), _taken(shop.merchant_id)
    assert idle_taken is not None and busy_taken is not None

    # Nothing changed: a run does nothing at all, however many merchants there are.
    assert snapshot.refresh_changed(settle=dt.timedelta(0)) == 0

    shop.buy(code, 10_000)
    assert snapshot.refresh_changed(settle=dt.timedelta(0)) == 1
    assert _taken(shop.merchant_id) > busy_taken  # type: ignore[operator]
    assert _taken(idle.merchant_id) == idle_taken
    assert _board(shop).status == {"active": 1, "at_risk": 0, "lapsed": 0, "never": 0}

    # A new card is a change too (the cohort sizes).
    shop.card(busy_program)
    assert snapshot.refresh_changed(settle=dt.timedelta(0)) == 1
    assert _board(shop).cohorts[-1].size == 2


def test_an_old_snapshot_counts_the_days_since_it_was_taken(shop: Shop) -> None:
    program = shop.program("bonus", BONUS)
    code = shop.card(program)["code"]
    shop.buy(code, 10_000)
    _catch_up()
    # The purchase was 40 days ago; the snapshot was taken 20 days after it.
    now = db.utcnow()
    with db.transaction() as session:
        session.execute(
            update(Card)
            .where(Card.merchant_id == shop.merchant_id)
            .values(last_visit_at=now - dt.timedelta(days=40))
        )
        snapshot.refresh(session, shop.merchant_id, "UTC", now - dt.timedelta(days=20))
    actor = Actor(merchant_id=shop.merchant_id, role="manager", kind="staff")
    with db.read() as session:
        f = service.filters_for(session, actor, None, None, None, None)
        taken = snapshot.as_of(session, shop.merchant_id, now)
        assert taken is not None  # the job keeps running
        snap = snapshot.cells(session, f, taken, now)
        live = queries.guest_cells(session, f, now)
    assert [(c.recency, c.visits, c.guests) for c in snap] == [(c.recency, c.visits, c.guests) for c in live]
    assert snap[0].recency == 40


def test_a_bulk_change_larger_than_one_scan_still_moves_on(shop: Shop, client: TestClient) -> None:
    _catch_up()
    other = new_shop(client, "Bulk café")
    programs = [shop.program("bonus", BONUS), other.program("bonus", BONUS)]
    for program, s in zip(programs, (shop, other), strict=True):
        for _ in range(3):
            s.card(program)
    at = db.utcnow()
    with db.transaction() as session:  # six cards changed at the very same instant
        session.execute(
            update(Card)
            .where(Card.merchant_id.in_([shop.merchant_id, other.merchant_id]))
            .values(updated_at=at)
        )
    with db.read() as session:
        found, reached = snapshot.changed_since(session, at - dt.timedelta(microseconds=1), at, scan=2)
    assert sorted(found) == sorted([shop.merchant_id, other.merchant_id]) and reached == at


def _updated_at(code: str) -> dt.datetime:
    with db.read() as session:
        at = session.scalar(select(Card.updated_at).where(Card.code == code))
    assert at is not None
    return at


def _changed(since: dt.datetime) -> list[int]:
    with db.read() as session:
        found, _ = snapshot.changed_since(session, since, db.utcnow())
    return found


def test_a_purchase_is_found_by_its_row_not_the_cards_updated_at(shop: Shop, client: TestClient) -> None:
    """A purchase leaves the card's (indexed) updated_at alone, so its card UPDATE can be
    HOT; the merchant is found through the purchases' created_at instead."""
    program = shop.program("bonus", BONUS)
    code = shop.card(program)["code"]
    other = new_shop(client, "Other café")
    other.card(other.program("bonus", BONUS))
    _catch_up()
    before, since = _updated_at(code), db.utcnow()
    shop.buy(code, 10_000)
    assert _updated_at(code) == before
    assert _changed(since) == [shop.merchant_id]
    with db.read() as session:
        taken = _taken(shop.merchant_id)
        assert taken is not None and snapshot.outdated(session, shop.merchant_id, taken)
    assert snapshot.refresh_changed(settle=dt.timedelta(0)) == 1
    assert _board(shop).status == {"active": 1, "at_risk": 0, "lapsed": 0, "never": 0}


def test_other_card_writes_are_still_found_by_the_cards_updated_at(shop: Shop) -> None:
    """What the cards' index covered besides purchases: a refund (spend and visits), a
    new card (cohort sizes) both mark the merchant changed."""
    program = shop.program("bonus", BONUS)
    code = shop.card(program)["code"]
    bought = shop.buy(code, 10_000)
    _catch_up()
    since = db.utcnow()
    r = shop.post(f"/api/v1/purchases/{bought['id']}/refunds", {}, role="cashier")
    assert r.status_code in (200, 201), r.text
    assert _updated_at(code) > since
    assert _changed(since) == [shop.merchant_id]
    _catch_up()
    since = db.utcnow()
    shop.card(program)
    assert _changed(since) == [shop.merchant_id]


def test_both_sources_bounded_miss_nothing(shop: Shop, client: TestClient) -> None:
    """Scans of 2 rows per source: the watermark moves only as far as both sources are
    complete, so run after run every merchant is found, whichever source saw it."""
    buyer = shop.program("bonus", BONUS)
    code = shop.card(buyer)["code"]
    _catch_up()
    since = db.utcnow()
    for _ in range(3):
        shop.buy(code, 1_000)
    late = new_shop(client, "Late café")
    late.card(late.program("bonus", BONUS))  # a card change after the purchases
    for _ in range(3):
        shop.buy(code, 1_000)
    until, found, runs = db.utcnow(), set(), 0
    while since < until and runs < 50:
        with db.read() as session:
            merchants, reached = snapshot.changed_since(session, since, until, scan=2, merchants=1)
        assert reached > since
        found.update(merchants)
        since, runs = reached, runs + 1
    assert since == until and found == {shop.merchant_id, late.merchant_id}
