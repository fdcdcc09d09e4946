"""The demo coffee shop: a planned half year of guests, played through the real services."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter

from loyalwallet import db, demo
from loyalwallet.analytics import service
from loyalwallet.cards.sweeps import check_ledger
from loyalwallet.merchants.actors import Actor

NOW = dt.datetime(2026, 11, 24, 9, 30, tzinfo=dt.UTC)


def test_the_plan_is_deterministic_and_in_the_past() -> None:
    plans = demo.plan_history(NOW, random.Random(7))
    assert plans == demo.plan_history(NOW, random.Random(7))
    assert len(plans) == demo.GUEST_COUNT and len({p.phone for p in plans}) == demo.GUEST_COUNT
    start = NOW - dt.timedelta(days=demo.HISTORY_DAYS + 1)
    for plan in plans:
        times = [plan.joined, *(v.at for v in plan.visits)]
        assert times == sorted(times) and start <= times[0] and times[-1] < NOW
    refunds = Counter(v.refund for p in plans for v in p.visits if v.refund)
    assert refunds == {"line": 1, "full": 1}
    channels = Counter(p.cards[0] for p in plans)
    assert set(channels) == {"counter", "tables", "website", "instagram"}
    visits = Counter(len(p.visits) for p in plans)
    assert visits[0] and visits[1] and sum(n for k, n in visits.items() if k >= 10) >= 10


def test_the_seeded_demo_keeps_the_ledger_and_fills_the_dashboard() -> None:
    now = db.utcnow()
    info = demo.create_shop(now)
    merchant_id = info["merchant_id"]
    with db.read() as session:
        assert [bad for bad in check_ledger(session) if bad["merchant_id"] == merchant_id] == []
        owner = Actor(merchant_id=merchant_id, role="owner", kind="staff")
        board = service.dashboard(session, owner, service.filters_for(session, owner, None, None, None, None))
        since = (now - dt.timedelta(days=demo.HISTORY_DAYS + 7)).date().isoformat()
        half_year = service.dashboard(
            session, owner, service.filters_for(session, owner, since, None, None, None)
        )
    assert board.totals["purchases"] > 50 and board.totals["repeaters"] > 10
    assert board.avg_check is not None and 15_000 < board.avg_check < 60_000
    assert all(n > 0 for n in board.status.values()), board.status
    assert board.rfm.guests > 100
    assert sum(1 for s in board.rfm.segments if s.guests) >= 6
    joined = [c for c in board.cohorts if c.size]
    assert len(joined) >= 6 and sum(c.size for c in board.cohorts) >= demo.GUEST_COUNT
    assert any(a for c in joined for a in c.active[1:])  # guests came back in later months
    assert board.upsell["lined"] > 0 and board.upsell["upsell"] > 0
    assert board.refunds["count"] == 2
    channels = {row[0] for row in half_year.issued_by("channel")}
    assert channels == {"counter", "tables", "website", "instagram", "cashier"}
    assert half_year.installs == demo.GUEST_COUNT + len(demo.GUESTS)  # the five hold two cards
    assert half_year.bucket == "week" and sum(1 for pt in half_year.trend if pt.purchases) >= 20
