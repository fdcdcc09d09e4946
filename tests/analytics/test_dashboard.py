"""The dashboard's numbers on a small, known data set (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt

from loyalwallet import db
from loyalwallet.analytics import queries, rollup, service
from loyalwallet.analytics.queries import WALLET_SOURCES
from loyalwallet.merchants.actors import Actor
from support import Shop

BONUS = {"tiers": [{"name": "Base", "min_spend": 0, "cashback_pct": 5}]}
COFFEE = {"name": "Latte", "category": "coffee", "qty": 1, "price": 20_000}
CAKE = {"name": "Cake", "category": "dessert", "qty": 1, "price": 10_000}


def _board(shop: Shop, **filters) -> service.Dashboard:
    actor = Actor(merchant_id=shop.merchant_id, role="manager", kind="staff")
    with db.read() as session:
        f = service.filters_for(session, actor, None, None, filters.get("location"), filters.get("program"))
        return service.dashboard(session, actor, f)


def test_dashboard_figures(shop: Shop) -> None:
    program = shop.program("bonus", BONUS)
    stamp = shop.program("stamp")
    a = shop.card(program, channel="qr")["code"]
    b = shop.card(program, channel="instagram")["code"]
    shop.card(program, channel="qr")  # installed, never bought
    s = shop.card(stamp, channel="qr")["code"]
    shop.buy(a, 30_000, items=[COFFEE, CAKE], location_id=shop.location_id)
    shop.buy(a, 20_000, items=[COFFEE])
    shop.buy(b, 10_000)
    shop.buy(s, 40_000)
    p = shop.buy(b, 20_000)
    shop.post(f"/api/v1/purchases/{p['id']}/refunds", {"amount": 5_000})
    rollup.catch_up(settle=dt.timedelta(0))

    board = _board(shop)
    assert board.totals == {
        "buyers": 3,
        "purchases": 5,
        "repeaters": 2,
        "revenue_gross": 120_000,
        "revenue": 115_000,  # net of the 50.00 refunded
        "refunded": 5_000,
        "refunded_purchases": 0,
        "net_purchases": 5,
    }
    assert board.frequency == 5 / 3 and board.repeat_rate == 2 / 3
    assert board.avg_check == 23_000
    assert (board.upsell["lined"], board.upsell["upsell"], board.upsell_share) == (2, 1, 0.5)
    assert {c["category"]: c["checks"] for c in board.upsell["categories"]} == {"coffee": 2, "dessert": 1}
    assert board.refunds == {"count": 1, "amount": 5_000}
    assert board.issued_by("channel") == [("qr", 3, 2), ("instagram", 1, 1)]
    assert board.issued_by("wallet") == [("web", 4, 3)]
    assert (board.installs, board.activations) == (4, 3)
    assert board.status == {"active": 3, "at_risk": 0, "lapsed": 0, "never": 1}
    assert board.rfm.guests == 3
    this_month = board.cohorts[-1]
    assert (this_month.size, this_month.active) == (4, [3])
    assert sum(pt.purchases for pt in board.trend) == 5

    # The cards' cached figures (a period ending today) and grouping the period's purchases
    # by card (any other period) agree.
    far = dt.datetime(2999, 1, 1, tzinfo=dt.UTC)
    with db.read() as session:
        grouped = queries.period_totals(session, board.filters, far)
        assert grouped == queries.period_totals(session, board.filters, db.utcnow())
        assert service.rules.net_totals(grouped) == board.totals
    shop.buy(s, 1_000)  # not folded into the rollup yet: counted from the purchases above the watermark
    fresh = _board(shop).totals
    assert (fresh["purchases"], fresh["revenue"], fresh["repeaters"]) == (6, 116_000, 3)
    rollup.catch_up(settle=dt.timedelta(0))
    assert _board(shop).totals == fresh

    by_program = _board(shop, program=program)
    assert by_program.totals["purchases"] == 4 and by_program.cohorts[-1].size == 3
    at_location = _board(shop, location=shop.location_id)
    assert at_location.totals["revenue"] == 30_000 and at_location.totals["purchases"] == 1
    assert (at_location.totals["buyers"], at_location.totals["repeaters"]) == (1, 0)


def test_cards_by_wallet(shop: Shop) -> None:
    """A card whose pass a device registered counts as Apple Wallet; the rest as web
    cards; a source a wallet part adds plugs in the same way."""
    from sqlalchemy import literal, select

    from loyalwallet.cards.models import Card
    from loyalwallet.wallet.apple.models import AppleRegistration

    program = shop.program("bonus", BONUS)
    apple = shop.card(program)
    other = shop.card(program)["code"]
    shop.card(program)
    with db.transaction() as session:
        card = session.scalar(
            select(Card).where(Card.merchant_id == shop.merchant_id, Card.code == apple["code"])
        )
        for device in ("phone", "watch"):  # one card on two devices counts once
            session.add(
                AppleRegistration(
                    merchant_id=shop.merchant_id,
                    device_id=device,
                    pass_type_id="pass.test",
                    serial=card.serial,
                    card_id=card.id,
                    push_token="t",
                    change_seq=0,
                )
            )
    assert sorted(_board(shop).issued_by("wallet")) == [("apple", 1, 0), ("web", 2, 0)]

    def fake_google():  # stands in for a wallet part's saves
        return select(Card.id, literal("google")).where(Card.code == other)

    WALLET_SOURCES.append(fake_google)
    try:
        assert sorted(_board(shop).issued_by("wallet")) == [("apple", 1, 0), ("google", 1, 0), ("web", 1, 0)]
    finally:
        WALLET_SOURCES.remove(fake_google)


def test_rollup_is_idempotent_and_waits_for_settling(shop: Shop) -> None:
    program = shop.program("bonus", BONUS)
    code = shop.card(program)["code"]
    shop.buy(code, 10_000)
    assert rollup.catch_up() == 0 or True  # a fresh purchase may wait out SETTLE
    rollup.catch_up(settle=dt.timedelta(0))
    first = _board(shop).cohorts[-1].active
    shop.buy(code, 10_000)  # same card, same month: the set does not grow
    rollup.catch_up(settle=dt.timedelta(0))
    assert _board(shop).cohorts[-1].active == first == [1]


def test_snapshot_serves_guests_and_cohort_sizes(shop: Shop) -> None:
    from loyalwallet.analytics import snapshot

    program = shop.program("bonus", BONUS)
    codes = [shop.card(program)["code"] for _ in range(3)]
    shop.buy(codes[0], 10_000)
    live = _board(shop)
    assert snapshot.refresh_all(max_age=0) >= 1
    with db.read() as session:
        assert snapshot.as_of(session, shop.merchant_id, db.utcnow()) is not None
    snap = _board(shop)
    assert snap.status == live.status == {"active": 1, "at_risk": 0, "lapsed": 0, "never": 2}
    assert [s.guests for s in snap.rfm.segments] == [s.guests for s in live.rfm.segments]
    assert snap.cohorts[-1].size == live.cohorts[-1].size == 3
    assert not snap.guests_live
    shop.card(program)  # a big merchant's snapshot lags until the next refresh...
    big, snapshot.LIVE_CARDS = snapshot.LIVE_CARDS, 0
    try:
        assert _board(shop).cohorts[-1].size == 3
    finally:
        snapshot.LIVE_CARDS = big
    now = _board(shop)  # ... a café's is read live when a card changed after it
    assert now.cohorts[-1].size == 4 and now.guests_live
    snapshot.refresh_all(max_age=0)
    assert _board(shop).cohorts[-1].size == 4 and not _board(shop).guests_live


def test_sales_today_show_at_once_after_a_snapshot(shop: Shop) -> None:
    """The issue's day: a card, a snapshot ("never bought 1"), then 7 purchases today:
    the dashboard says 1 active guest, not 0, with no rollup or snapshot run since."""
    from loyalwallet.analytics import snapshot

    program = shop.program("bonus", BONUS)
    code = shop.card(program)["code"]
    snapshot.refresh_all(max_age=0)
    assert _board(shop).status["never"] == 1
    for _ in range(7):
        shop.buy(code, 30_000)
    board = _board(shop)
    assert board.status == {"active": 1, "at_risk": 0, "lapsed": 0, "never": 0}
    assert board.totals["purchases"] == 7 and board.trend[-1].purchases == 7


def test_revenue_and_average_check_net_of_refunds(shop: Shop) -> None:
    program = shop.program("bonus", BONUS)
    code = shop.card(program)["code"]
    full = shop.buy(code, 100_000)
    part = shop.buy(code, 30_000)
    shop.buy(code, 20_000)
    rollup.catch_up(settle=dt.timedelta(0))  # two sales in the rollup, refunds after it
    assert shop.post(f"/api/v1/purchases/{full['id']}/refunds", {}).status_code == 201
    assert shop.post(f"/api/v1/purchases/{part['id']}/refunds", {"amount": 10_000}).status_code == 201
    shop.buy(code, 40_000)  # not in the rollup yet
    board = _board(shop)
    assert board.totals["revenue_gross"] == 190_000
    assert board.totals["revenue"] == 80_000  # 190 000 - 100 000 - 10 000
    assert board.totals["purchases"] == 4 and board.totals["net_purchases"] == 3
    assert board.avg_check == 80_000 // 3  # the sale refunded in full is not a purchase
    today = board.trend[-1]
    assert (today.purchases, today.revenue) == (3, 80_000)
