"""The dashboard's data: filters in, every figure of the page out (see docs/metrics.md)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from loyalwallet import db
from loyalwallet.analytics import activity, cohorts, queries, rules, snapshot
from loyalwallet.analytics import wallets as _wallets  # noqa: F401  (registers the wallets' queries)
from loyalwallet.analytics.models import DayCategory
from loyalwallet.analytics.queries import Filters
from loyalwallet.cards.codes import normalise
from loyalwallet.cards.models import Card
from loyalwallet.checkout.models import Purchase
from loyalwallet.db import utcnow
from loyalwallet.errors import not_found
from loyalwallet.merchants.actors import Actor
from loyalwallet.merchants.models import Location
from loyalwallet.merchants.service import get_location, get_merchant, today

__all__ = ["Dashboard", "categories", "dashboard", "filters_for", "get_merchant", "purchases"]
from loyalwallet.programs.models import Program
from loyalwallet.programs.service import get_program

COHORT_MONTHS = 12


@dataclass
class Dashboard:
    filters: Filters
    totals: dict[str, int]
    trend: list[rules.Point]
    bucket: str
    upsell: dict[str, Any]
    refunds: dict[str, int]
    issued: list[dict[str, Any]]
    status: dict[str, int]
    rfm: rules.Rfm
    cohorts: list[rules.Cohort]
    timings: dict[str, float] = field(default_factory=dict)
    guests_as_of: dt.datetime | None = None
    # When the figures were read: sales are live; guests come from the snapshot unless
    # `guests_live` (no fresh snapshot, or a sale since it at a small merchant).
    updated_at: dt.datetime = field(default_factory=utcnow)
    guests_live: bool = False
    # While the guests' purchase-day bitmaps are being built (analytics/activity.py): how
    # far (0..1); buyers are counted from the purchases meanwhile.
    preparing: float | None = None

    @property
    def frequency(self) -> float | None:
        return rules.ratio(self.totals["purchases"], self.totals["buyers"])

    @property
    def repeat_rate(self) -> float | None:
        return rules.ratio(self.totals["repeaters"], self.totals["buyers"])

    @property
    def avg_check(self) -> int | None:
        """Net of refunds: revenue after refunds over the purchases not refunded in full."""
        return rules.avg(self.totals["revenue"], self.totals["net_purchases"])

    @property
    def upsell_share(self) -> float | None:
        return rules.ratio(self.upsell["upsell"], self.upsell["lined"])

    def issued_by(self, key: str) -> list[tuple[str, int, int]]:
        sums: dict[str, list[int]] = {}
        for row in self.issued:
            s = sums.setdefault(row[key], [0, 0])
            s[0] += row["cards"]
            s[1] += row["activated"]
        return sorted(((k, v[0], v[1]) for k, v in sums.items()), key=lambda x: -x[1])

    @property
    def installs(self) -> int:
        return sum(r["cards"] for r in self.issued)

    @property
    def activations(self) -> int:
        return sum(r["activated"] for r in self.issued)


def filters_for(
    session: Session,
    actor: Actor,
    start: str | None,
    end: str | None,
    location_id: int | None = None,
    program_id: int | None = None,
) -> Filters:
    merchant = get_merchant(session, actor.merchant_id)
    period = rules.parse_period(start, end, today(merchant), merchant.timezone)
    if location_id is not None:
        get_location(session, actor.merchant_id, location_id)
    if program_id is not None:
        get_program(session, actor.merchant_id, program_id)
    return Filters(actor.merchant_id, period, location_id, program_id)


def dashboard(
    session: Session, actor: Actor, f: Filters, now: dt.datetime | None = None, *, parallel: bool = True
) -> Dashboard:
    """Every figure of the page. The queries are independent, so they run in three
    groups on their own connections at once (the live scan of the period's purchases
    beside the rollup reads); `session` checks the caller's rights."""
    actor.require("manager")
    if f.merchant_id != actor.merchant_id:
        raise not_found("merchant")
    now = now or utcnow()
    timings: dict[str, float] = {}
    last = rules.month_of(f.period.end)
    first = rules.month_add(last, -(COHORT_MONTHS - 1))

    def timed(name: str, fn: Any, *args: Any) -> Any:
        t0 = time.perf_counter()
        result = fn(*args)
        timings[name] = time.perf_counter() - t0
        return result

    def live() -> dict[str, Any]:
        with db.read() as s:
            queries.tune(s)
            # Buyers of any period from the guests' purchase days (a period ending now
            # from their index alone: faster than the cards' cached figures, measured in
            # bench/RESULTS.md); None while the days are being prepared (then
            # period_totals counts them from the cards or the purchases).
            counted = timed("buyers", activity.window_buyers, s, f)
            return {
                "totals": timed("period_totals", queries.period_totals, s, f, now, counted),
                "preparing": activity.progress(s),
            }

    def rollups() -> dict[str, Any]:
        with db.read() as s:
            queries.tune(s)
            return {
                "days": timed("trend", queries.daily, s, f),
                "refunded_days": timed("refunded_days", queries.refunded_by_day, s, f),
                "upsell": timed("upsell", queries.upsell, s, f),
                "refunds": timed("refunds", queries.refunds, s, f),
                "issued": timed("issued", queries.issued, s, f),
            }

    def guests() -> dict[str, Any]:
        with db.read() as s:
            queries.tune(s)
            taken = snapshot.as_of(s, f.merchant_id, now)
            if taken is not None and snapshot.outdated(s, f.merchant_id, taken):
                taken = None  # a sale since the snapshot: a small merchant's figures are read live
            if taken is not None:
                cells = timed("guests", snapshot.cells, s, f, taken, now)
                sizes = timed("cohort_sizes", snapshot.cohort_sizes, s, f, first, last)
            else:  # no fresh snapshot (a new install, or no worker running): read the cards
                cells = timed("guests", queries.guest_cells, s, f, now)
                sizes = timed("cohort_sizes", queries.cohort_sizes, s, f, first, last)
            # The counts kept by the fold; while an existing database's are being filled,
            # the card months counted.
            activity = timed("cohorts", cohorts.activity, s, f, first, last)
            if activity is None:
                activity = timed("cohorts", queries.cohort_activity, s, f, first, last)
            return {"cells": cells, "sizes": sizes, "activity": activity, "taken": taken}

    parts: dict[str, Any] = {}
    if parallel:
        with ThreadPoolExecutor(max_workers=3, thread_name_prefix="dashboard") as pool:
            for future in [pool.submit(job) for job in (live, rollups, guests)]:
                parts.update(future.result())
    else:
        for job in (live, rollups, guests):
            parts.update(job())
    return Dashboard(
        filters=f,
        totals=rules.net_totals(parts["totals"]),
        trend=rules.trend(rules.net_of_refunds(parts["days"], parts["refunded_days"]), f.period),
        bucket=rules.bucket_for(f.period.days),
        upsell=parts["upsell"],
        refunds=parts["refunds"],
        issued=parts["issued"],
        status=rules.status_counts(parts["cells"]),
        rfm=rules.rfm(parts["cells"]),
        cohorts=rules.cohorts(parts["sizes"], parts["activity"], first, last),
        timings=timings,
        guests_as_of=parts["taken"] or now,
        updated_at=now,
        guests_live=parts["taken"] is None,
        preparing=parts["preparing"],
    )


def purchases(
    session: Session, f: Filters, card: str, before: int | None, limit: int
) -> Sequence[Row[Purchase, str, int | None, str, str]]:
    """The purchases of the filters' period (and location), newest first, at most `limit`
    with ids below `before`: rows of (Purchase, card code, customer id, program name,
    location name)."""
    lo, hi = f.period.utc_bounds()
    stmt = (
        select(Purchase, Card.code, Card.customer_id, Program.name, Location.name)
        .join(Card, Card.id == Purchase.card_id)
        .join(Program, Program.id == Purchase.program_id)
        .outerjoin(Location, Location.id == Purchase.location_id)
        .where(Purchase.merchant_id == f.merchant_id, Purchase.created_at >= lo, Purchase.created_at < hi)
    )
    if f.location_id is not None:
        stmt = stmt.where(Purchase.location_id == f.location_id)
    if card.strip():
        stmt = stmt.where(Card.code == normalise(card))
    if before:
        stmt = stmt.where(Purchase.id < before)
    return session.execute(stmt.order_by(Purchase.id.desc()).limit(limit)).all()


def categories(session: Session, merchant_id: int, limit: int = 50) -> list[str]:
    """Item categories the merchant's checks have had (what the cashier can pick from)."""
    return list(
        session.scalars(
            select(DayCategory.category)
            .where(DayCategory.merchant_id == merchant_id, DayCategory.category != "")
            .distinct()
            .limit(limit)
        )
    )
