"""The guests' purchase-day bitmaps (analytics/activity.py) give exactly the buyers and
repeat buyers computed from the purchases, for any period (SQLite and PostgreSQL); the
fold resumes after being killed; refunds change nothing."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
import zoneinfo
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, insert, select, update

from enrollment_support import merge_invitation_card
from loyalwallet import db
from loyalwallet.analytics import activity, queries, rollup, service
from loyalwallet.analytics import activity_rules as rules
from loyalwallet.analytics.models import GuestDays, GuestLocationDays, RollupState
from loyalwallet.analytics.rules import Period
from loyalwallet.cards.models import Card
from loyalwallet.checkout.models import Purchase
from loyalwallet.config import Settings
from loyalwallet.merchants.actors import Actor, system
from loyalwallet.merchants.service import create_location
from support import Shop, new_shop

TZ = "Europe/Moscow"
BASE = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
FAR = dt.datetime(2999, 1, 1, tzinfo=dt.UTC)  # no period ends after it: always the purchase scan
BONUS = {"tiers": [{"name": "Base", "min_spend": 0, "cashback_pct": 5}]}


def _seed(
    shop: Shop,
    programs: list[int],
    cards: int,
    purchases: list[tuple[int, int]],
    locations: list[int | None] | None = None,
) -> list[int]:
    """Cards (spread over the programs) and purchases (card index, minutes after BASE;
    the location by turns) written straight to the tables, with the cards' cached
    figures, as bench/ does."""
    places = locations or [shop.location_id]
    codes = [shop.card(programs[i % len(programs)])["code"] for i in range(cards)]
    with db.transaction() as session:
        by_code = dict(session.execute(select(Card.code, Card.id).where(Card.code.in_(codes))).all())
        ids = [int(by_code[c]) for c in codes]
        programs_of = dict(session.execute(select(Card.id, Card.program_id).where(Card.id.in_(ids))).all())
        rows = []
        for i, (k, minutes) in enumerate(purchases):
            card = ids[k % cards]
            at = BASE + dt.timedelta(minutes=minutes)
            rows.append(
                _purchase(shop.merchant_id, card, programs_of[card], places[(i + k) % len(places)], at)
            )
        if rows:
            session.execute(insert(Purchase), rows)
        for card in ids:
            n, first, last, spend = session.execute(
                select(
                    func.count(),
                    func.min(Purchase.created_at),
                    func.max(Purchase.created_at),
                    func.coalesce(func.sum(Purchase.amount), 0),
                ).where(Purchase.card_id == card)
            ).one()
            session.execute(
                update(Card)
                .where(Card.id == card)
                .values(visits=n, first_purchase_at=first, last_visit_at=last, spend=spend)
            )
    return ids


def _purchase(
    merchant: int, card: int, program: int, location: int | None, at: dt.datetime
) -> dict[str, Any]:
    amount = 10_000
    zeros = [
        "tier_discount",
        "coupon_discount",
        "discount",
        "points_redeemed",
        "redeem_value",
        "stamps_added",
        "refunded_amount",
        "refunded_money",
        "points_reversed",
        "points_returned",
        "stamps_reversed",
        "spend_reversed",
    ]
    return {
        "merchant_id": merchant,
        "card_id": card,
        "program_id": program,
        "location_id": location,
        "actor_type": "api_key",
        "amount": amount,
        "to_pay": amount,
        "accrual_base": amount,
        "points_accrued": 500,
        "spend_added": amount,
        "status": "completed",
        "created_at": at,
        **dict.fromkeys(zeros, 0),
    }


def _filters(
    shop: Shop, start: dt.date, end: dt.date, program: int | None = None, location: int | None = None
) -> queries.Filters:
    return queries.Filters(shop.merchant_id, Period(start, end, TZ), location, program)


def _both(shop: Shop, f: queries.Filters) -> tuple[dict[str, int] | None, dict[str, int]]:
    with db.read() as session:
        return activity.window_buyers(session, f), queries.buyers(session, f, FAR)


def _fold(backfill: bool = False) -> None:
    """Fold what is waiting: purchase range by purchase range, or card range by card
    range (the backfill after an upgrade)."""
    activity.catch_up(settle=dt.timedelta(0), backfill_over=0 if backfill else 10**9, cards=2)


DAY0 = BASE.astimezone(zoneinfo.ZoneInfo(TZ)).date()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cards=st.integers(1, 6),
    purchases=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 60 * 24 * 100)), max_size=30),
    late=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 60 * 24 * 100)), max_size=6),
    windows=st.lists(
        st.tuples(st.integers(-5, 100), st.integers(1, 120), st.integers(0, 2)), min_size=1, max_size=6
    ),
    by_program=st.booleans(),
    backfill=st.booleans(),
)
def test_any_window_equals_the_purchase_scan(
    client: TestClient,
    cards: int,
    purchases: list[tuple[int, int]],
    late: list[tuple[int, int]],
    windows: list[tuple[int, int, int]],
    by_program: bool,
    backfill: bool,
) -> None:
    shop = new_shop(client, "Bitmap café")
    programs = [shop.program("bonus", BONUS), shop.program("stamp")]
    with db.transaction() as session:
        other = create_location(session, system(shop.merchant_id), "Second").id
    places: list[int | None] = [shop.location_id, other, None]
    ids = _seed(shop, programs, cards, purchases, places)
    _fold(backfill)
    # Purchases the fold has not reached yet are counted on top of the bitmaps.
    with db.transaction() as session:
        programs_of = dict(session.execute(select(Card.id, Card.program_id).where(Card.id.in_(ids))).all())
        for k, minutes in late:
            card = ids[k % cards]
            at = BASE + dt.timedelta(minutes=minutes)
            session.execute(
                insert(Purchase), [_purchase(shop.merchant_id, card, programs_of[card], None, at)]
            )
            session.execute(update(Card).where(Card.id == card).values(visits=Card.visits + 1))
        for card in ids:  # the cached first purchase, as the checkout keeps it
            first = session.scalar(select(func.min(Purchase.created_at)).where(Purchase.card_id == card))
            session.execute(update(Card).where(Card.id == card).values(first_purchase_at=first))
    for offset, length, place in windows:
        start = DAY0 + dt.timedelta(days=offset)
        end = start + dt.timedelta(days=length - 1)
        f = _filters(shop, start, end, programs[0] if by_program else None, [None, *places[:2]][place])
        fast, slow = _both(shop, f)
        assert fast == slow, (offset, length, place)
    _fold()
    # A late purchase may be the card's earliest: every location row learns it.
    assert _rows(shop.merchant_id, True) == _expected_rows(shop.merchant_id, True)
    for offset, length, place in windows:
        start = DAY0 + dt.timedelta(days=offset)
        end = start + dt.timedelta(days=length - 1)
        f = _filters(shop, start, end, programs[0] if by_program else None, [None, *places[:2]][place])
        fast, slow = _both(shop, f)
        assert fast == slow, (offset, length, place)


def test_refunds_leave_buyers_and_the_dashboard_uses_the_bitmaps(shop: Shop) -> None:
    program = shop.program("bonus", BONUS)
    a = shop.card(program)["code"]
    b = shop.card(program)["code"]
    p = shop.buy(a, 30_000)
    shop.buy(a, 10_000)
    q = shop.buy(b, 20_000)
    shop.post(f"/api/v1/purchases/{p['id']}/refunds", {"amount": 30_000})  # in full
    shop.post(f"/api/v1/purchases/{q['id']}/refunds", {"amount": 5_000})
    _fold()
    rollup.catch_up(settle=dt.timedelta(0))
    actor = Actor(merchant_id=shop.merchant_id, role="manager", kind="staff")
    with db.read() as session:
        f = service.filters_for(session, actor, None, None)
        board = service.dashboard(session, actor, f)
        assert activity.window_buyers(session, f) == {"buyers": 2, "repeaters": 1}
        assert queries.buyers(session, f, FAR) == {"buyers": 2, "repeaters": 1}
    assert (board.totals["buyers"], board.totals["repeaters"], board.preparing) == (2, 1, None)
    # A refund after the fold: still the same (a refunded purchase is still a purchase).
    r = shop.buy(b, 7_000)
    _fold()
    shop.post(f"/api/v1/purchases/{r['id']}/refunds", {"amount": 7_000})
    with db.read() as session:
        assert activity.window_buyers(session, f) == queries.buyers(session, f, FAR)
        assert activity.window_buyers(session, f) == {"buyers": 2, "repeaters": 2}


def _expected_rows(
    merchant_id: int, by_place: bool = False, kept: dict[int, int] | None = None
) -> dict[Any, tuple[Any, ...]]:
    """What the bitmaps must hold, computed here from the purchases (a location row also
    the card's first day at any location; a merged card's purchases are its kept card's)."""
    counts: dict[Any, dict[int, int]] = {}
    first_anywhere: dict[int, int] = {}
    zone = zoneinfo.ZoneInfo(TZ)
    with db.read() as session:
        for card, place, at in session.execute(
            select(Purchase.card_id, Purchase.location_id, Purchase.created_at).where(
                Purchase.merchant_id == merchant_id
            )
        ):
            d = at.astimezone(zone).date().toordinal()
            card = (kept or {}).get(card, card)
            first_anywhere[card] = min(d, first_anywhere.get(card, d))
            key = (card, place or 0) if by_place else card
            counts.setdefault(key, {})
            counts[key][d] = counts[key].get(d, 0) + 1
    out = {}
    for key, c in counts.items():
        built = rules.build(c)
        assert built is not None
        out[key] = (built.first, built.days, built.multi) + ((first_anywhere[key[0]],) if by_place else ())
    return out


def _rows(merchant_id: int, by_place: bool = False) -> dict[Any, tuple[Any, ...]]:
    table: Any = GuestLocationDays if by_place else GuestDays
    with db.read() as session:
        return {
            ((row[0], row[1]) if by_place else row[0]): tuple(row[2:] if by_place else row[1:])
            for row in session.execute(
                select(
                    table.card_id,
                    *([table.location_id] if by_place else []),
                    table.first_day,
                    table.days,
                    table.multi,
                    *([table.first_anywhere] if by_place else []),
                ).where(table.merchant_id == merchant_id)
            )
        }


def _state() -> dict[str, int]:
    with db.read() as session:
        return {
            n: int(v)
            for n, v in session.execute(
                select(RollupState.name, RollupState.value).where(RollupState.name.like("guest-days%"))
            )
        }


def test_fold_killed_midway_resumes_to_the_same_result(client: TestClient, settings: Settings) -> None:
    shop = new_shop(client, "Resumed café")
    program = shop.program("bonus", BONUS)
    purchases = [(k, (k * 7919 + j * 1543) % (60 * 24 * 90)) for k in range(80) for j in range(k % 4 + 1)]
    with db.transaction() as session:
        other = create_location(session, system(shop.merchant_id), "Second").id
    _seed(shop, [program], 80, purchases, [shop.location_id, other, None])
    env = {
        **os.environ,
        "LOYALWALLET_DATA_DIR": str(settings.data_dir),
        "LOYALWALLET_DATABASE_URL": settings.database_url,
        "LOYALWALLET_RUN_WORKER": "0",
    }
    cmd = [
        sys.executable,
        "-m",
        "loyalwallet.cli",
        "analytics",
        "fold",
        "--settle",
        "0",
        "--cards",
        "1",
        "--backfill-over",
        "0",
    ]
    before = _state().get(activity.CURSOR, 0)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # Wait until it has committed a few card ranges, then kill it without warning.
        while proc.poll() is None and _state().get(activity.CURSOR, 0) < before + 3:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    state = _state()
    assert state[activity.TARGET] > state.get(activity.WATERMARK, 0), "killed after it had finished"
    with db.read() as session:
        assert activity.progress(session) is not None  # the dashboard says "being prepared"
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "up to date" in done.stderr
    state = _state()
    assert state[activity.WATERMARK] == state[activity.TARGET]
    assert _rows(shop.merchant_id) == _expected_rows(shop.merchant_id)
    assert _rows(shop.merchant_id, True) == _expected_rows(shop.merchant_id, True)
    with db.read() as session:
        assert activity.progress(session) is None


@settings(max_examples=200, deadline=None)
@given(
    a=st.dictionaries(st.integers(0, 60), st.integers(1, 3), max_size=12),
    b=st.dictionaries(st.integers(0, 60), st.integers(1, 3), max_size=12),
    start=st.integers(-5, 65),
    length=st.integers(1, 70),
)
def test_bitmap_merge_is_order_free_and_windows_are_exact(
    a: dict[int, int], b: dict[int, int], start: int, length: int
) -> None:
    together = {d: a.get(d, 0) + b.get(d, 0) for d in {*a, *b}}
    assert rules.merge(rules.build(a), b) == rules.merge(rules.build(b), a) == rules.build(together)
    end = start + length - 1
    inside = sum(n for d, n in together.items() if start <= d <= end)
    before = any(d < start for d in together)
    expected = (inside > 0, inside > 0 and (inside >= 2 or before))
    assert rules.in_window(rules.build(together), start, end) == expected


def _expected_windows(
    merchant_id: int, kept: dict[int, int], windows: list[tuple[int, int, int | None]]
) -> list[tuple[int, int]]:
    """(buyers, repeat buyers) of each window (start, end ordinals, location) from the
    purchases, a merged card's counted as its kept card's."""
    per_card: dict[int, dict[int, int]] = {}
    per_place: dict[tuple[int, int], dict[int, int]] = {}
    zone = zoneinfo.ZoneInfo(TZ)
    with db.read() as session:
        for card, place, at in session.execute(
            select(Purchase.card_id, Purchase.location_id, Purchase.created_at).where(
                Purchase.merchant_id == merchant_id
            )
        ):
            owner, d = kept.get(card, card), at.astimezone(zone).date().toordinal()
            per_card.setdefault(owner, {})[d] = per_card.get(owner, {}).get(d, 0) + 1
            key = (owner, place or 0)
            per_place.setdefault(key, {})[d] = per_place.get(key, {}).get(d, 0) + 1
    out = []
    for start, end, place in windows:
        if place is None:
            out.append(rules.window_counts({c: rules.build(n) for c, n in per_card.items()}, start, end))
        else:
            acts = {c: rules.build(n) for (c, p), n in per_place.items() if p == place}
            firsts = {c: min(per_card[c]) for c in acts}
            out.append(rules.window_counts(acts, start, end, firsts))
    return out


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cards=st.integers(2, 6),
    purchases=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 60 * 24 * 60)), max_size=25),
    late=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 60 * 24 * 60)), max_size=5),
    merges=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), min_size=1, max_size=3),
    folded=st.sampled_from(["nothing", "all", "backfill half-way"]),
    windows=st.lists(
        st.tuples(st.integers(-5, 60), st.integers(1, 70), st.integers(0, 2)), min_size=1, max_size=4
    ),
)
def test_a_merged_invitation_card_counts_as_its_kept_card(
    client: TestClient,
    cards: int,
    purchases: list[tuple[int, int]],
    late: list[tuple[int, int]],
    merges: list[tuple[int, int]],
    folded: str,
    windows: list[tuple[int, int, int]],
) -> None:
    """After a merge (enrollment/invitations.py) the invitation card's purchases are the
    kept card's: one guest in the purchase days, whether they were folded before the
    merge, folded half-way by a backfill, or not folded yet; the purchase scan and the
    cards' cached figures agree."""
    shop = new_shop(client, "Merging café")
    program = shop.program("bonus", BONUS)
    with db.transaction() as session:
        other = create_location(session, system(shop.merchant_id), "Second").id
    places: list[int | None] = [shop.location_id, other, None]
    ids = _seed(shop, [program], cards, purchases, places)
    if folded == "all":
        _fold()
    elif folded == "backfill half-way":
        activity.catch_up(settle=dt.timedelta(0), backfill_over=0, cards=1, max_steps=1 + cards // 2)
    with db.transaction() as session:  # purchases the fold has not reached at the merge
        for k, minutes in late:
            card = ids[k % cards]
            at = BASE + dt.timedelta(minutes=minutes)
            session.execute(insert(Purchase), [_purchase(shop.merchant_id, card, program, other, at)])
            n, first, last = session.execute(
                select(func.count(), func.min(Purchase.created_at), func.max(Purchase.created_at)).where(
                    Purchase.card_id == card
                )
            ).one()
            session.execute(
                update(Card)
                .where(Card.id == card)
                .values(visits=n, first_purchase_at=first, last_visit_at=last)
            )
    kept: dict[int, int] = {}
    for a, b in merges:
        src, dst = ids[a % cards], ids[b % cards]
        # An invitation card is merged once, into a card that was not merged away.
        if src == dst or src in kept or dst in kept or src in kept.values():
            continue
        merge_invitation_card(shop.merchant_id, program, src, dst)
        kept[src] = dst
    spans = []
    for offset, length, place in windows:
        start = DAY0 + dt.timedelta(days=offset)
        spans.append((start, start + dt.timedelta(days=length - 1), [None, *places[:2]][place]))
    expected = _expected_windows(
        shop.merchant_id, kept, [(s.toordinal(), e.toordinal(), p) for s, e, p in spans]
    )
    for stage in ("before the fold", "after it"):
        for (start, end, place), want in zip(spans, expected, strict=True):
            f = _filters(shop, start, end, None, place)
            with db.read() as session:
                fast = activity.window_buyers(session, f)
                slow = queries.buyers(session, f, FAR)
            if fast is not None:
                assert (fast["buyers"], fast["repeaters"]) == want, (stage, start, end, place)
            assert (slow["buyers"], slow["repeaters"]) == want, (stage, start, end, place)
        _fold()
    # The rows themselves: the kept card's hold both cards' days, a merged card has none.
    assert _rows(shop.merchant_id) == _expected_rows(shop.merchant_id, kept=kept)
    assert _rows(shop.merchant_id, True) == _expected_rows(shop.merchant_id, True, kept)
    # A period ending today at every location: the cards' cached figures agree.
    today = dt.datetime.now(zoneinfo.ZoneInfo(TZ)).date()
    f = _filters(shop, DAY0 - dt.timedelta(days=5), today)
    with db.read() as session:
        cached = queries.buyers(session, f, db.utcnow())
        assert activity.window_buyers(session, f) == cached
        assert queries.buyers(session, f, FAR) == cached
