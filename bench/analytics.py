"""The analytics dashboard's data on PostgreSQL with 1M guests and 10M purchases.

    .venv/bin/python bench/analytics.py            # generate once (minutes), measure, keep the database
    .venv/bin/python bench/analytics.py --reuse    # measure again on the database generated before
    .venv/bin/python bench/analytics.py --drop     # drop the bench database and exit

The data is generated with SQL generate_series in its own database (lwbench_analytics on
127.0.0.1:5432, or LOYALWALLET_BENCH_DB / LOYALWALLET_BENCH_PG): one merchant, three
locations, a bonus program, N guests with a card each (joined evenly over two years,
channels mixed), M purchases (older guests buy more; 30 % of checks have lines, half of
those with a dessert), and the cards' cached figures (visits, spend, first/last visit)
recomputed from the purchases.

Measured, in the same run, per period (`--runs` rounds, old and new alternating):
- old: the dashboard (analytics.service.dashboard) counting buyers and repeat buyers from
  the purchases (the covering index; the cards' cached figures for a period ending today);
- new: the same dashboard reading the guests' purchase-day bitmaps
  (analytics/activity.py), one pass over the guests whatever the period;
  both give the same figures (asserted);
- optionally (`--baseline-runs`) every figure computed naively from the raw tables.
The first fold of the rollups and of the guests' purchase days (card by card, resumable)
are timed once, when first built (`--rebuild-rollups`, `--rebuild-guest-days` redo them).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from loyalwallet.config import normalise_database_url

DB_NAME = os.environ.get("LOYALWALLET_BENCH_DB", "lwbench_analytics")
MERCHANT_NAME = "Bench café"
SPAN_DAYS = 730
BONUS_RULES = (
    '{"tiers": [{"name": "Bronze", "min_spend": 0, "cashback_pct": 5},'
    ' {"name": "Silver", "min_spend": 1000000, "cashback_pct": 7}], "max_redeem_pct": 50}'
)


def server_url() -> str:
    return os.environ.get("LOYALWALLET_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def bench_url() -> str:
    base, _, _ = normalise_database_url(server_url()).rpartition("/")
    return f"{base}/{DB_NAME}"


def _admin():  # type: ignore[no-untyped-def]
    return create_engine(normalise_database_url(server_url()), isolation_level="AUTOCOMMIT")


def db_exists() -> bool:
    with _admin().connect() as conn:
        return conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": DB_NAME}) is not None


def drop_db() -> None:
    with _admin().connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def seeded_merchant(engine) -> int | None:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return conn.scalar(text("SELECT id FROM merchants WHERE name = :n"), {"n": MERCHANT_NAME})


def generate(guests: int, purchases: int) -> None:
    """Create the database, migrate it, fill it with SQL generate_series."""
    from loyalwallet.migrations import migrate

    drop_db()
    with _admin().connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{DB_NAME}"'))
    url = bench_url()
    migrate(url)
    engine = create_engine(url)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    start = now - dt.timedelta(days=SPAN_DAYS)
    p = {"n": guests, "start": start, "now": now, "span": f"{SPAN_DAYS} days"}
    with engine.begin() as conn:
        m = conn.scalar(
            text(
                "INSERT INTO merchants (name, currency, timezone, locale, settings, created_at)"
                " VALUES (:name, 'RUB', 'Europe/Moscow', 'ru', '{}', :start) RETURNING id"
            ),
            {"name": MERCHANT_NAME, "start": start},
        )
        l0 = None
        for i in range(3):
            lid = conn.scalar(
                text(
                    "INSERT INTO locations (merchant_id, name, active, created_at)"
                    " VALUES (:m, :name, true, :start) RETURNING id"
                ),
                {"m": m, "name": f"Location {i + 1}", "start": start},
            )
            l0 = l0 or lid
        prog = conn.scalar(
            text(
                "INSERT INTO programs (merchant_id, kind, name, rules, design, status, version, created_at, updated_at)"
                " VALUES (:m, 'bonus', 'Bench bonus', CAST(:rules AS json), '{}', 'active', 1, :start, :start)"
                " RETURNING id"
            ),
            {"m": m, "rules": BONUS_RULES, "start": start},
        )
    p.update(m=m, l0=l0, prog=prog)
    t0 = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO customers (merchant_id, phone_index, marketing_consent, created_at)"
                " SELECT :m, md5('p' || g), (g % 3 = 0),"
                "  CAST(:start AS timestamptz) + (g::float8 / :n) * CAST(:span AS interval)"
                " FROM generate_series(1, CAST(:n AS bigint)) g"
            ),
            p,
        )
        conn.execute(
            text(
                "INSERT INTO cards (merchant_id, program_id, customer_id, code, serial, auth_token, public_token,"
                " status, balance, stamps, tier, spend, visits, referral_rewarded, channel, version,"
                " pass_updated_at, created_at, updated_at)"
                " SELECT :m, :prog, c.id, lpad(c.id::text, 13, '0'), md5('s' || c.id), md5('a' || c.id),"
                "  md5('t' || c.id), 'active', 0, 0, 'Bronze', 0, 0, false,"
                "  (ARRAY['counter', 'qr', 'instagram', 'site', 'import'])[1 + floor(random() * 5)::int],"
                "  1, c.created_at, c.created_at, c.created_at"
                " FROM customers c WHERE c.merchant_id = :m ORDER BY c.id"
            ),
            p,
        )
        c0 = conn.scalar(text("SELECT min(id) FROM cards WHERE merchant_id = :m"), p)
    p["c0"] = c0
    say(f"{guests} guests and cards in {time.perf_counter() - t0:.0f} s")
    chunk = 1_000_000
    for lo in range(1, purchases + 1, chunk):
        hi = min(purchases, lo + chunk - 1)
        t1 = time.perf_counter()
        with engine.begin() as conn:
            # k: which card (older cards, lower k, buy more; every 7th card never buys);
            # the purchase falls between the card's joining and now.
            conn.execute(
                text(
                    "INSERT INTO purchases (merchant_id, card_id, program_id, location_id, actor_type, amount,"
                    " tier_discount, coupon_discount, discount, points_redeemed, redeem_value, to_pay,"
                    " accrual_base, points_accrued, stamps_added, spend_added, refunded_amount,"
                    " refunded_money, points_reversed, points_returned, stamps_reversed, spend_reversed,"
                    " status, created_at)"
                    " SELECT :m, :c0 + k, :prog, :l0 + (g % 3), 'api_key', amt, 0, 0, 0, 0, 0, amt, amt,"
                    "  amt * 5 / 10000, 0, amt, 0, 0, 0, 0, 0, 0, 'completed',"
                    "  joined + random() * (CAST(:now AS timestamptz) - joined)"
                    " FROM (SELECT g, k, amt,"
                    "   CAST(:start AS timestamptz) + ((k + 1)::float8 / :n) * CAST(:span AS interval) AS joined"
                    "  FROM (SELECT g, k0 + CASE WHEN k0 % 7 = 0 AND k0 + 1 < :n THEN 1 ELSE 0 END AS k, amt FROM"
                    "   (SELECT g, floor(:n * power(random(), 1.6))::bigint AS k0,"
                    "         (15000 + floor(random() * 20) * 5000)::bigint AS amt"
                    "        FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) g) s0) s) t"
                ),
                {**p, "lo": lo, "hi": hi},
            )
        say(f"purchases {hi:,} / {purchases:,} ({time.perf_counter() - t1:.0f} s)")
    t1 = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO purchase_lines (merchant_id, purchase_id, position, sku, name, category, qty,"
                " price, refunded_qty)"
                " SELECT merchant_id, id, 0, 'LATTE', 'Latte', 'coffee', 1,"
                "  amount - CASE WHEN id % 2 = 0 THEN 5000 ELSE 0 END, 0"
                " FROM purchases WHERE merchant_id = :m AND id % 10 < 3"
            ),
            p,
        )
        conn.execute(
            text(
                "INSERT INTO purchase_lines (merchant_id, purchase_id, position, sku, name, category, qty,"
                " price, refunded_qty)"
                " SELECT merchant_id, id, 1, 'CAKE', 'Cheesecake', 'dessert', 1, 5000, 0"
                " FROM purchases WHERE merchant_id = :m AND id % 10 < 3 AND id % 2 = 0"
            ),
            p,
        )
    say(f"purchase lines in {time.perf_counter() - t1:.0f} s")
    t1 = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE cards SET visits = a.n, spend = a.total, first_purchase_at = a.first,"
                " last_visit_at = a.last"
                " FROM (SELECT card_id, count(*) AS n, sum(amount) AS total, min(created_at) AS first,"
                "       max(created_at) AS last FROM purchases WHERE merchant_id = :m GROUP BY card_id) a"
                " WHERE cards.id = a.card_id"
            ),
            p,
        )
    say(f"cards' cached figures in {time.perf_counter() - t1:.0f} s")
    with create_engine(url, isolation_level="AUTOCOMMIT").connect() as conn:
        conn.execute(text("VACUUM ANALYZE"))
    say(f"generated in {time.perf_counter() - t0:.0f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--guests", type=int, default=1_000_000)
    ap.add_argument("--purchases", type=int, default=10_000_000)
    ap.add_argument("--reuse", action="store_true", help="reuse the database generated before")
    ap.add_argument("--drop", action="store_true", help="drop the bench database and exit")
    ap.add_argument("--seed-only", action="store_true", help="generate the data and exit")
    ap.add_argument("--runs", type=int, default=5, help="dashboard loads per scenario (old and new each)")
    ap.add_argument("--baseline-runs", type=int, default=0, help="naive baseline runs per scenario (slow)")
    ap.add_argument(
        "--rebuild-guest-days",
        action="store_true",
        help="empty the guests' purchase days and fold them again",
    )
    ap.add_argument("--guest-cards", type=int, default=20_000, help="cards per step of the first fold")
    ap.add_argument(
        "--buyers-only",
        action="store_true",
        help="time only the buyers query, old (purchases) against new (guests' purchase days)",
    )
    ap.add_argument(
        "--rebuild-rollups", action="store_true", help="empty the rollups and fold every purchase again"
    )
    args = ap.parse_args()
    if args.drop:
        drop_db()
        say(f"dropped {DB_NAME}")
        return
    if not (args.reuse and db_exists() and seeded_merchant(create_engine(bench_url()))):
        say(f"generating {args.guests:,} guests and {args.purchases:,} purchases in {DB_NAME}")
        generate(args.guests, args.purchases)
    if args.seed_only:
        return
    if args.buyers_only:
        buyers_only(args.runs)
        return
    measure(args.runs, args.rebuild_rollups, args.baseline_runs, args.rebuild_guest_days, args.guest_cards)


NAIVE_WHERE = "p.merchant_id = :m AND p.created_at >= :lo AND p.created_at < :hi AND (CAST(:loc AS bigint) IS NULL OR p.location_id = :loc)"
NAIVE_TREND = f"""
SELECT to_char(timezone(:tz, p.created_at), 'YYYY-MM-DD'), count(*), sum(p.amount)
FROM purchases p WHERE {NAIVE_WHERE} GROUP BY 1
"""
NAIVE_UPSELL = f"""
SELECT count(*), sum(CASE WHEN x.cats >= 2 THEN 1 ELSE 0 END) FROM (
  SELECT l.purchase_id, count(DISTINCT coalesce(l.category, '')) AS cats
  FROM purchase_lines l JOIN purchases p ON p.id = l.purchase_id WHERE {NAIVE_WHERE} GROUP BY l.purchase_id) x
"""
NAIVE_CATEGORIES = f"""
SELECT l.category, count(DISTINCT l.purchase_id), sum(l.qty * l.price)
FROM purchase_lines l JOIN purchases p ON p.id = l.purchase_id WHERE {NAIVE_WHERE} GROUP BY l.category
"""
NAIVE_COHORTS = """
SELECT to_char(timezone(:tz, c.created_at), 'YYYY-MM') AS cohort,
       to_char(timezone(:tz, p.created_at), 'YYYY-MM') AS month, count(DISTINCT p.card_id)
FROM purchases p JOIN cards c ON c.id = p.card_id
WHERE p.merchant_id = :m AND c.created_at >= :first AND p.created_at < :hi
GROUP BY 1, 2
"""
NAIVE_RFM = """
SELECT floor(extract(epoch FROM (:now - g.last)) / 86400) AS r, g.n, count(*), sum(g.total)
FROM (SELECT card_id, count(*) AS n, sum(amount) AS total, max(created_at) AS last
      FROM purchases WHERE merchant_id = :m GROUP BY card_id) g
GROUP BY 1, 2
"""


def _spread(samples: list[float]) -> str:
    return f"median {statistics.median(samples):.2f} s (min {min(samples):.2f}, max {max(samples):.2f})"


def measure(
    runs: int,
    rebuild: bool = False,
    baseline_runs: int = 0,
    rebuild_guest_days: bool = False,
    guest_cards: int = 20_000,
) -> None:
    import tempfile

    from loyalwallet import db, wiring
    from loyalwallet.analytics import queries, rollup, service
    from loyalwallet.config import Settings, configure, load_settings
    from loyalwallet.merchants.actors import Actor
    from loyalwallet.migrations import migrate

    url = bench_url()
    migrate(url)  # a database generated before a newer revision gets its indexes
    s = configure(load_settings(Path(tempfile.mkdtemp(prefix="lwbench-")), url))
    configure(Settings(**{**s.__dict__, "run_worker": False}))
    db.init_engine()
    wiring.install()  # as every entry point: handlers, hooks, wallet sources
    engine = db.get_engine()
    merchant_id = seeded_merchant(engine)
    assert merchant_id is not None
    with engine.connect() as conn:
        n_cards = conn.scalar(text("SELECT count(*) FROM cards WHERE merchant_id = :m"), {"m": merchant_id})
        n_purchases = conn.scalar(
            text("SELECT count(*) FROM purchases WHERE merchant_id = :m"), {"m": merchant_id}
        )
        location = conn.scalar(
            text("SELECT min(id) FROM locations WHERE merchant_id = :m"), {"m": merchant_id}
        )
    say(f"{n_cards:,} cards, {n_purchases:,} purchases")
    # A database generated under an earlier draft of revision 0006 lacks newer rollup
    # tables: create what is missing, and rebuild the rollups when asked.
    from loyalwallet.db import Base

    Base.metadata.create_all(engine, checkfirst=True)
    if rebuild:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "TRUNCATE analytics_card_months, analytics_days, analytics_day_categories, analytics_guest_cells"
                )
            )
            conn.execute(text("DELETE FROM analytics_state"))
    behind, _ = rollup.watermark()
    if behind < n_purchases:
        t0 = time.perf_counter()
        covered = rollup.catch_up(batch=1_000_000, settle=dt.timedelta(0))
        say(f"rollup catch-up over {covered:,} purchase ids: {time.perf_counter() - t0:.0f} s (once)")
        with create_engine(url, isolation_level="AUTOCOMMIT").connect() as conn:
            conn.execute(
                text("VACUUM ANALYZE analytics_card_months, analytics_days, analytics_day_categories")
            )
    from loyalwallet.analytics import activity, snapshot

    if rebuild_guest_days:
        with engine.begin() as conn:
            conn.execute(text("TRUNCATE analytics_guest_days"))
            conn.execute(text("DELETE FROM analytics_state WHERE name LIKE 'guest-days%'"))
    with db.read() as session:
        pending = activity.progress(session)
    if pending is not None:
        # The first fold of an existing database: card by card, resumable, with progress.
        t0 = time.perf_counter()
        shown = [-1]

        def show(done: float | None) -> None:
            pct = 100 if done is None else int(done * 100)
            if pct // 10 != shown[0] // 10:
                shown[0] = pct
                say(f"  guests' purchase days: {pct} % ({time.perf_counter() - t0:.0f} s)")

        steps = activity.catch_up(settle=dt.timedelta(0), on_step=show, cards=guest_cards)
        say(
            f"first fold of the guests' purchase days: {time.perf_counter() - t0:.0f} s ({steps} steps, once)"
        )
        with create_engine(url, isolation_level="AUTOCOMMIT").connect() as conn:
            conn.execute(text("VACUUM ANALYZE analytics_guest_days"))
    activity.catch_up(settle=dt.timedelta(0))

    t0 = time.perf_counter()
    snapshot.refresh_all(max_age=0)
    say(
        f"snapshot of the cards' figures: {time.perf_counter() - t0:.1f} s (the worker redoes it every 5 minutes)"
    )
    actor = Actor(merchant_id=merchant_id, role="owner", kind="system")
    # (name, days, location, days before today the period ends)
    scenarios = [
        ("last 30 days", 30, None, 0),
        ("last 30 days, one location", 30, location, 0),
        ("last 90 days", 90, None, 0),
        ("last 365 days", 365, None, 0),
        ("30 days that ended 60 days ago", 30, None, 60),
        ("90 days that ended 60 days ago", 90, None, 60),
    ]
    scenarios.append(("365 days that ended 60 days ago", 365, None, 60))
    print()
    print(
        "| scenario | old dashboard (buyers from purchases) | new dashboard (guests' purchase days)"
        " | old/new | buyers query old → new |"
    )
    print("|---|---|---|---|---|")
    for name, days, loc, ago in scenarios:
        with db.read() as session:
            f = service.filters_for(session, actor, None, None, loc)
            f = queries.Filters(
                f.merchant_id,
                type(f.period)(
                    f.period.end - dt.timedelta(days=days - 1 + ago),
                    f.period.end - dt.timedelta(days=ago),
                    f.period.tz,
                ),
                loc,
            )
        fast: list[float] = []
        old: list[float] = []
        naive: list[float] = []
        parts: dict[str, list[float]] = {"old": [], "new": []}
        timings: dict[str, float] = {}
        for i in range(runs):
            # Old and new alternate within the round, so both see the same machine.
            figures = {}
            for way, samples in (("old", old), ("new", fast)):
                activity.READ = way == "new"
                t0 = time.perf_counter()
                with db.read() as session:
                    board = service.dashboard(session, actor, f)
                samples.append(time.perf_counter() - t0)
                figures[way] = board.totals
                parts[way].append(board.timings.get("buyers", 0) + board.timings["period_totals"])
                if way == "new":
                    timings = board.timings
            activity.READ = True
            assert figures["old"] == figures["new"], (name, figures)
            if i >= baseline_runs:
                continue
            naive.append(_naive(f, merchant_id, loc))
        ratio = statistics.median(old) / statistics.median(fast)
        print(
            f"| {name} | {_spread(old)} | {_spread(fast)} | {ratio:.1f}× |"
            f" {statistics.median(parts['old']):.2f} → {statistics.median(parts['new']):.2f} s |",
            flush=True,
        )
        if naive:
            print(f"  naive baseline (every figure from the raw tables): {_spread(naive)}")
        print(
            "  parts of the new one (three groups run at once): "
            + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in timings.items()),
            flush=True,
        )
    print(f"load average after the run: {os.getloadavg()}")


def buyers_only(runs: int) -> None:
    """Buyers and repeat buyers alone: the old query (the cards' cached figures for a
    period ending today at every location, else the period's purchases grouped by card)
    against the guests' purchase days, alternating, the same figures asserted."""
    import tempfile

    from loyalwallet import db, wiring
    from loyalwallet.analytics import activity, queries
    from loyalwallet.config import Settings, configure, load_settings

    s = configure(load_settings(Path(tempfile.mkdtemp(prefix="lwbench-")), bench_url()))
    configure(Settings(**{**s.__dict__, "run_worker": False}))
    db.init_engine()
    wiring.install()
    engine = db.get_engine()
    merchant_id = seeded_merchant(engine)
    assert merchant_id is not None
    with engine.connect() as conn:
        location = conn.scalar(
            text("SELECT min(id) FROM locations WHERE merchant_id = :m"), {"m": merchant_id}
        )
        tz = conn.scalar(text("SELECT timezone FROM merchants WHERE id = :m"), {"m": merchant_id})
    with db.read() as session:
        assert activity.progress(session) is None, "fold the guests' purchase days first"
    today = dt.datetime.now(dt.UTC).date()
    now = dt.datetime.now(dt.UTC)
    print("| period | old buyers query | new (guests' purchase days) | old/new |")
    print("|---|---|---|---|")
    for name, days, loc, ago in SCENARIOS:
        period = type_period()(today - dt.timedelta(days=days - 1 + ago), today - dt.timedelta(days=ago), tz)
        f = queries.Filters(merchant_id, period, location if loc else None)
        old: list[float] = []
        new: list[float] = []
        for _ in range(runs):
            with db.read() as session:
                queries.tune(session)
                t0 = time.perf_counter()
                a = queries.buyers(session, f, now)
                old.append(time.perf_counter() - t0)
            with db.read() as session:
                queries.tune(session)
                t0 = time.perf_counter()
                b = activity.window_buyers(session, f)
                new.append(time.perf_counter() - t0)
            assert a == b, (name, a, b)
        ratio = statistics.median(old) / statistics.median(new)
        print(f"| {name} | {_spread(old)} | {_spread(new)} | {ratio:.1f}× |", flush=True)
    print(f"load average after the run: {os.getloadavg()}")


def type_period():  # type: ignore[no-untyped-def]
    from loyalwallet.analytics.rules import Period

    return Period


# (name, days, one location?, days before today the period ends)
SCENARIOS = [
    ("last 30 days", 30, False, 0),
    ("last 30 days, one location", 30, True, 0),
    ("last 90 days", 90, False, 0),
    ("last 365 days", 365, False, 0),
    ("30 days that ended 60 days ago", 30, False, 60),
    ("90 days that ended 60 days ago", 90, False, 60),
    ("365 days that ended 60 days ago", 365, False, 60),
    ("90 days that ended 60 days ago, one location", 90, True, 60),
]


def _naive(f, merchant_id: int, loc: int | None) -> float:  # type: ignore[no-untyped-def]
    """The same figures computed naively from the raw tables: the trend and the upsell from
    purchases and their lines, cohorts and RFM from every purchase."""
    from loyalwallet import db
    from loyalwallet.analytics import queries
    from loyalwallet.analytics.rules import month_add, month_of

    t0 = time.perf_counter()
    with db.read() as session:
        queries.tune(session)
        queries.period_totals(session, f, dt.datetime.max.replace(tzinfo=dt.UTC))
        queries.refunds(session, f)
        queries.issued(session, f)
        last = month_of(f.period.end)
        first = month_add(last, -11)
        lo, hi = f.period.utc_bounds()
        first_dt = dt.datetime.fromisoformat(first + "-01T00:00:00+00:00")
        p = {
            "m": merchant_id,
            "tz": f.period.tz,
            "first": first_dt,
            "lo": lo,
            "hi": hi,
            "loc": loc,
            "now": dt.datetime.now(dt.UTC),
        }
        for sql in (NAIVE_TREND, NAIVE_UPSELL, NAIVE_CATEGORIES, NAIVE_COHORTS, NAIVE_RFM):
            session.execute(text(sql), p).all()
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
