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

`--full`: the whole dashboard page (GET /admin as a logged-in owner: every tile, chart and
list of the page, rendered) for the windows today, the last 7/30/90/365 days, 30 and 90
days that ended 60 days ago, and one location; old (buyers from the purchases) and new
(the guests' purchase days) alternating, the dashboard's figures asserted equal, with the
time of each query of the page (the slowest parts).
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
    ap.add_argument("--full", action="store_true", help="time the whole dashboard page per window")
    ap.add_argument(
        "--fold-only",
        action="store_true",
        help="migrate and fold everything (rollups, the cohort counts' fill, the guests' purchase days), timed",
    )
    ap.add_argument(
        "--refill-cohorts",
        action="store_true",
        help="with --fold-only: empty the cohort counts and fill them again (the first fill of an existing database)",
    )
    ap.add_argument(
        "--naive-cohorts",
        action="store_true",
        help="with --full: also check the retention table against the purchases (slow at 10M)",
    )
    ap.add_argument(
        "--fold-ab",
        type=int,
        default=0,
        metavar="RANGES",
        help="time the first fold's SQL per card range (--guest-cards), old against new, rolled back",
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
    if args.fold_only:
        fold_only(args.guest_cards, args.refill_cohorts)
        return
    if args.full:
        full(args.runs, args.naive_cohorts)
        return
    if args.fold_ab:
        fold_ab(args.fold_ab, args.guest_cards)
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


# The retention table from the purchases and the cards: a merged invitation card's
# purchases are its kept card's, and it is no cohort's card itself.
MERGED = """SELECT invitation_card_id AS src, max(card_id) AS dst FROM joins
WHERE invitation_card_id IS NOT NULL AND card_id <> invitation_card_id GROUP BY 1"""
NAIVE_COHORT_ACTIVITY = f"""
WITH merged AS ({MERGED})
SELECT to_char(timezone(:tz, c.created_at), 'YYYY-MM') AS cohort,
       to_char(timezone(:tz, p.created_at), 'YYYY-MM') AS month, count(DISTINCT c.id)
FROM purchases p LEFT JOIN merged m ON m.src = p.card_id JOIN cards c ON c.id = coalesce(m.dst, p.card_id)
WHERE p.merchant_id = :m AND c.created_at >= :lo AND p.created_at >= :lo
GROUP BY 1, 2
"""
NAIVE_COHORT_SIZES = f"""
SELECT to_char(timezone(:tz, created_at), 'YYYY-MM'), count(*) FROM cards
WHERE merchant_id = :m AND created_at >= :lo AND id NOT IN (SELECT src FROM ({MERGED}) x) GROUP BY 1
"""


def _naive_cohorts(f):  # type: ignore[no-untyped-def]
    """The retention table of the filters' last 12 months, from the purchases."""
    from loyalwallet import db
    from loyalwallet.analytics import rules, service

    last = rules.month_of(f.period.end)
    first = rules.month_add(last, -(service.COHORT_MONTHS - 1))
    lo = dt.datetime.fromisoformat(first + "-01T00:00:00+00:00") - dt.timedelta(days=1)
    p = {"m": f.merchant_id, "tz": f.period.tz, "lo": lo}
    with db.read() as session:
        sizes = {m: int(n) for m, n in session.execute(text(NAIVE_COHORT_SIZES), p) if first <= m <= last}
        rows = [
            (c, m, int(n))
            for c, m, n in session.execute(text(NAIVE_COHORT_ACTIVITY), p)
            if first <= c <= last and m <= last
        ]
    return rules.cohorts(sizes, rows, first, last)


def _spread(samples: list[float]) -> str:
    return f"median {statistics.median(samples):.2f} s (min {min(samples):.2f}, max {max(samples):.2f})"


def fold_guest_days(guest_cards: int) -> tuple[float, int]:
    """The guests' purchase days folded card range by card range, progress every 10 %:
    (seconds, steps)."""
    from loyalwallet.analytics import activity

    t0 = time.perf_counter()
    shown = [-1]

    def show(done: float | None) -> None:
        pct = 100 if done is None else int(done * 100)
        if pct // 10 != shown[0] // 10:
            shown[0] = pct
            say(f"  guests' purchase days: {pct} % ({time.perf_counter() - t0:.0f} s)")

    steps = activity.catch_up(settle=dt.timedelta(0), on_step=show, cards=guest_cards)
    return time.perf_counter() - t0, steps


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
    from loyalwallet.analytics import activity, cohorts, snapshot

    if rebuild_guest_days:
        with engine.begin() as conn:
            conn.execute(text("TRUNCATE analytics_guest_days"))
            conn.execute(text("DELETE FROM analytics_state WHERE name LIKE 'guest-days%'"))
    with db.read() as session:
        pending = activity.progress(session)
    if pending is not None:
        # The first fold of an existing database: card by card, resumable, with progress.
        seconds, steps = fold_guest_days(guest_cards)
        say(f"first fold of the guests' purchase days: {seconds:.0f} s ({steps} steps, once)")
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
                activity.READ = cohorts.READ = way == "new"
                t0 = time.perf_counter()
                with db.read() as session:
                    board = service.dashboard(session, actor, f)
                samples.append(time.perf_counter() - t0)
                figures[way] = board.totals
                parts[way].append(board.timings.get("buyers", 0) + board.timings["period_totals"])
                if way == "new":
                    timings = board.timings
            activity.READ = cohorts.READ = True
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


def fold_only(guest_cards: int, refill_cohorts: bool) -> None:
    """Migrate, then every first fold an existing database needs after the upgrade, each
    timed: the rollups (card months with their cohort counts, days), the cohort counts'
    fill (resumable, card range by card range), the guests' purchase days."""
    import tempfile

    from loyalwallet import db, wiring
    from loyalwallet.analytics import cohorts, rollup
    from loyalwallet.config import Settings, configure, load_settings
    from loyalwallet.migrations import migrate

    url = bench_url()
    t0 = time.perf_counter()
    migrate(url)
    say(f"migrated in {time.perf_counter() - t0:.1f} s")
    s = configure(load_settings(Path(tempfile.mkdtemp(prefix="lwbench-")), url))
    configure(Settings(**{**s.__dict__, "run_worker": False}))
    db.init_engine()
    wiring.install()
    print(f"load average before: {os.getloadavg()}")
    t0 = time.perf_counter()
    covered = rollup.catch_up(batch=1_000_000, settle=dt.timedelta(0))
    say(f"rollups' fold over {covered:,} purchase ids: {time.perf_counter() - t0:.0f} s")
    if refill_cohorts:
        with db.get_engine().begin() as conn:
            conn.execute(text("TRUNCATE analytics_cohort_months"))
            conn.execute(text("UPDATE analytics_state SET value = 0 WHERE name = :n"), {"n": cohorts.CURSOR})
    t0 = time.perf_counter()
    steps = 0
    while rollup.fill_step():
        steps += 1
        with db.read() as session:
            done = cohorts.progress(session)
        say(
            f"  cohort counts: {100 if done is None else int(done * 100)} % ({time.perf_counter() - t0:.1f} s)"
        )
    say(f"cohort counts' fill: {time.perf_counter() - t0:.1f} s ({steps} steps)")
    seconds, steps = fold_guest_days(guest_cards)
    say(f"guests' purchase days: {seconds:.0f} s ({steps} steps)")
    with create_engine(url, isolation_level="AUTOCOMMIT").connect() as conn:
        conn.execute(text("VACUUM ANALYZE"))
    print(f"load average after: {os.getloadavg()}")


# (name, days, one location?, days before today the period ends)
FULL_WINDOWS = [
    ("today", 1, False, 0),
    ("last 7 days", 7, False, 0),
    ("last 30 days", 30, False, 0),
    ("last 90 days", 90, False, 0),
    ("last 365 days", 365, False, 0),
    ("30 days that ended 60 days ago", 30, False, 60),
    ("90 days that ended 60 days ago", 90, False, 60),
    ("last 30 days, one location", 30, True, 0),
    ("90 days that ended 60 days ago, one location", 90, True, 60),
]


def _backends() -> list[int]:
    """The PostgreSQL backends connected to the bench database (only this bench uses it)."""
    with _admin().connect() as conn:
        return list(conn.scalars(text("SELECT pid FROM pg_stat_activity WHERE datname = :n"), {"n": DB_NAME}))


def _cpu(backends: list[int] | None = None) -> float:
    """CPU seconds (from /proc) of this process and of the bench database's PostgreSQL
    backends (the other engineers' backends are not counted)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in [os.getpid(), *(_backends() if backends is None else backends)]:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                stat = fh.read()
            fields = stat[stat.rindex(")") + 2 :].split()
        except (OSError, ValueError):
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


FIGURES = ("totals", "trend", "upsell", "refunds", "issued", "status", "rfm", "cohorts")


def full(runs: int, naive_cohorts: bool = False) -> None:
    """The whole dashboard page per window, old and new alternating (see the docstring)."""
    import re
    import tempfile

    from fastapi.testclient import TestClient

    from loyalwallet import db, wiring
    from loyalwallet.analytics import activity, cohorts, queries, service, snapshot
    from loyalwallet.api.app import create_app
    from loyalwallet.config import Settings, configure, load_settings
    from loyalwallet.merchants.actors import Actor
    from loyalwallet.merchants.models import Staff
    from loyalwallet.merchants.service import create_staff

    s = configure(load_settings(Path(tempfile.mkdtemp(prefix="lwbench-")), bench_url()))
    configure(Settings(**{**s.__dict__, "run_worker": False}))
    db.init_engine()
    wiring.install()
    engine = db.get_engine()
    merchant_id = seeded_merchant(engine)
    assert merchant_id is not None
    with db.read() as session:
        assert activity.progress(session) is None, "fold the guests' purchase days first"
    from loyalwallet.analytics import rollup

    behind, _ = rollup.watermark()
    with engine.connect() as conn:
        top = conn.scalar(text("SELECT max(id) FROM purchases")) or 0
        location = conn.scalar(
            text("SELECT min(id) FROM locations WHERE merchant_id = :m"), {"m": merchant_id}
        )
    assert behind >= top, "fold the rollups first (run without --full once)"
    login, password = "bench-owner@bench.test", "bench password 42"
    with db.transaction() as session:
        if session.query(Staff).filter_by(login=login).first() is None:
            create_staff(session, merchant_id, login, password, "owner", name="Bench")
    t0 = time.perf_counter()
    snapshot.refresh_all(max_age=0)
    say(f"snapshot of the cards' figures: {time.perf_counter() - t0:.1f} s (the worker's job)")
    client = TestClient(create_app(run_worker=False), raise_server_exceptions=True)
    page = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    r = client.post(
        "/login",
        data={"login": login, "password": password, "csrf": csrf.group(1)},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    actor = Actor(merchant_id=merchant_id, role="owner", kind="system")
    today = dt.datetime.now(dt.UTC).date()
    print(f"load average before: {os.getloadavg()}")
    print(
        "| window | old page (buyers from purchases) | new page (guests' purchase days) | old/new | new CPU s/page | slowest queries (new) |"
    )
    print("|---|---|---|---|---|---|")
    worst = 0.0
    checked: set[tuple[int, int]] = set()
    for name, days, loc, ago in FULL_WINDOWS:
        with db.read() as session:
            tz = service.filters_for(session, actor, None, None).period.tz
        start, end = today - dt.timedelta(days=days - 1 + ago), today - dt.timedelta(days=ago)
        f = queries.Filters(merchant_id, type_period()(start, end, tz), location if loc else None)
        url = f"/admin?from={start.isoformat()}&to={end.isoformat()}" + (
            f"&location={location}" if loc else ""
        )
        samples: dict[str, list[float]] = {"old": [], "new": []}
        cpu: list[float] = []
        parts: dict[str, float] = {}
        for _ in range(runs):
            figures = {}
            for way in ("old", "new"):
                activity.READ = cohorts.READ = way == "new"
                c0, t0 = _cpu(), time.perf_counter()
                r = client.get(url)
                samples[way].append(time.perf_counter() - t0)
                if way == "new":
                    cpu.append(_cpu() - c0)
                assert r.status_code == 200, r.text[:500]
                with db.read() as session:
                    board = service.dashboard(session, actor, f)
                # (issued: rows of a GROUP BY, in no particular order)
                figures[way] = tuple(
                    sorted(map(repr, v)) if k == "issued" else v for k in FIGURES for v in [getattr(board, k)]
                )
                if way == "new":
                    parts = board.timings
            activity.READ = cohorts.READ = True
            differ = [k for k, a, b in zip(FIGURES, figures["old"], figures["new"], strict=True) if a != b]
            assert not differ, (
                name,
                differ,
                [(figures["old"][FIGURES.index(k)], figures["new"][FIGURES.index(k)]) for k in differ],
            )
        if naive_cohorts and (f.period.end.year, f.period.end.month) not in checked:
            checked.add((f.period.end.year, f.period.end.month))
            t0 = time.perf_counter()
            assert board.cohorts == _naive_cohorts(f), name
            say(f"  retention table = the naive one from the purchases ({time.perf_counter() - t0:.0f} s)")
        worst = max(worst, max(samples["new"]))
        slow = sorted(parts.items(), key=lambda kv: -kv[1])[:3]
        ratio = statistics.median(samples["old"]) / statistics.median(samples["new"])
        print(
            f"| {name} | {_spread(samples['old'])} | {_spread(samples['new'])} | {ratio:.1f}× |"
            f" {statistics.median(cpu):.2f} | " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in slow) + " |",
            flush=True,
        )
    print(f"slowest new page: {worst:.2f} s; load average after: {os.getloadavg()}")


# The first fold's bitmaps before this branch: one bit string per (card, place, day), as
# long as the card's span of days, OR-ed together (quadratic in the span).
OLD_BITS = """
SELECT card_id, place, max(merchant_id) AS merchant_id, max(program_id) AS program_id,
       min(first) AS first, min(last) AS last, bit_or(bits) AS days,
       CASE WHEN bool_or(n >= 2) THEN bit_or(CASE WHEN n >= 2 THEN bits ELSE bits # bits END) END AS multi
FROM (
  SELECT d.*, min(day) OVER w AS first, max(day) OVER w AS last,
         CAST(rpad(lpad('1', (day - min(day) OVER w + 1)::int, '0'),
                   (max(day) OVER w - min(day) OVER w + 1)::int, '0') AS varbit) AS bits
  FROM {source} d WINDOW w AS (PARTITION BY card_id, place)
) x GROUP BY card_id, place
"""
CHECKSUM = """
SELECT md5(string_agg(concat_ws(',', card_id, 0, first_day, last_day, days, multi), ';' ORDER BY card_id)),
       count(*) FROM analytics_guest_days WHERE card_id > :lo AND card_id <= :hi
UNION ALL
SELECT md5(string_agg(concat_ws(',', card_id, location_id, first_day, last_day, days, multi, first_anywhere), ';'
                      ORDER BY card_id, location_id)),
       count(*) FROM analytics_guest_location_days WHERE card_id > :lo AND card_id <= :hi
"""


def fold_ab(ranges: int, cards: int) -> None:
    """The first fold's statement (activity.REBUILD) for `ranges` card ranges spread over
    the cards, old SQL and new alternating, each in a transaction rolled back; the rows
    written are compared (checksums)."""
    from loyalwallet.analytics import activity

    old_sql = activity.REBUILD.replace(activity._BITS.format(source="days"), OLD_BITS.format(source="days"))
    per_card = activity._BITS.format(
        source="(SELECT card_id, max(merchant_id) AS merchant_id, max(program_id) AS program_id, 0 AS place, day,"
        " sum(n) AS n FROM days GROUP BY card_id, day)"
    )
    old_sql = old_sql.replace(
        per_card,
        OLD_BITS.format(
            source="(SELECT card_id, max(merchant_id) AS merchant_id, max(program_id) AS program_id, 0 AS place,"
            " day, sum(n) AS n FROM days GROUP BY card_id, day)"
        ),
    )
    assert old_sql != activity.REBUILD and activity._BITS not in old_sql
    engine = create_engine(bench_url())
    with engine.connect() as conn:
        lo, hi = conn.execute(text("SELECT min(id), max(id) FROM cards")).one()
        goal = conn.scalar(text("SELECT max(id) FROM purchases"))
    print(f"load average before: {os.getloadavg()}")
    print("| card range | guests | old s (CPU s) | new s (CPU s) | old/new wall | old/new CPU |")
    print("|---|---|---|---|---|---|")
    ratios: list[float] = []
    cpu_ratios: list[float] = []
    for k in range(ranges):
        first = lo - 1 + (hi - lo) * k // ranges
        p = {"lo": first, "hi": first + cards, "goal": goal}
        out = {}
        for way, sql in (("old", old_sql), ("new", activity.REBUILD)):
            with engine.connect() as conn:
                tx = conn.begin()
                backend = [int(conn.scalar(text("SELECT pg_backend_pid()")) or 0)]
                if way == "new":  # as activity._backfill runs it
                    conn.execute(text(f"SET LOCAL work_mem = '{activity.FOLD_WORK_MEM}'"))
                conn.execute(
                    text("DELETE FROM analytics_guest_days WHERE card_id > :lo AND card_id <= :hi"), p
                )
                conn.execute(
                    text("DELETE FROM analytics_guest_location_days WHERE card_id > :lo AND card_id <= :hi"),
                    p,
                )
                c0, t0 = _cpu(backend), time.perf_counter()
                conn.execute(text(sql), p)
                out[way] = (
                    time.perf_counter() - t0,
                    _cpu(backend) - c0,
                    conn.execute(text(CHECKSUM), p).all(),
                )
                tx.rollback()
        assert out["old"][2] == out["new"][2], (first, out)
        n = out["new"][2][0][1]
        ratios.append(out["old"][0] / out["new"][0])
        cpu_ratios.append(out["old"][1] / max(out["new"][1], 1e-9))
        print(
            f"| {first + 1}..{first + cards} | {n} | {out['old'][0]:.1f} ({out['old'][1]:.1f})"
            f" | {out['new'][0]:.1f} ({out['new'][1]:.1f}) | {ratios[-1]:.1f}× | {cpu_ratios[-1]:.1f}× |",
            flush=True,
        )
    print(
        f"old/new wall: min {min(ratios):.1f}, median {statistics.median(ratios):.1f}, max {max(ratios):.1f};"
        f" CPU: min {min(cpu_ratios):.1f}, median {statistics.median(cpu_ratios):.1f}, max {max(cpu_ratios):.1f}"
    )
    print(f"load average after: {os.getloadavg()}")


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
