"""The dashboard's data: filters in, every figure of the page out (see docs/metrics.md)."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from loyalwallet.analytics import queries, rules, snapshot
from loyalwallet.analytics.queries import Filters
from loyalwallet.db import utcnow
from loyalwallet.errors import not_found
from loyalwallet.merchants.actors import Actor
from loyalwallet.merchants.service import get_location, get_merchant, today

__all__ = ["Dashboard", "dashboard", "filters_for", "get_merchant"]
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

    @property
    def frequency(self) -> float | None:
        return rules.ratio(self.totals["purchases"], self.totals["buyers"])

    @property
    def repeat_rate(self) -> float | None:
        return rules.ratio(self.totals["repeaters"], self.totals["buyers"])

    @property
    def avg_check(self) -> int | None:
        return rules.avg(self.totals["revenue"], self.totals["purchases"])

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


def dashboard(session: Session, actor: Actor, f: Filters, now: dt.datetime | None = None) -> Dashboard:
    actor.require("manager")
    if f.merchant_id != actor.merchant_id:
        raise not_found("merchant")
    now = now or utcnow()
    timings: dict[str, float] = {}
    queries.tune(session)

    def timed(name: str, fn: Any, *args: Any) -> Any:
        t0 = time.perf_counter()
        result = fn(*args)
        timings[name] = time.perf_counter() - t0
        return result

    totals = timed("period_totals", queries.period_totals, session, f)
    days = timed("trend", queries.daily, session, f)
    upsell = timed("upsell", queries.upsell, session, f)
    refunds = timed("refunds", queries.refunds, session, f)
    issued = timed("issued", queries.issued, session, f)
    last = rules.month_of(f.period.end)
    first = rules.month_add(last, -(COHORT_MONTHS - 1))
    taken = snapshot.as_of(session, f.merchant_id, now)
    if taken is not None:
        cells = timed("guests", snapshot.cells, session, f)
        sizes = timed("cohort_sizes", snapshot.cohort_sizes, session, f, first, last)
    else:  # no fresh snapshot (a new install, or no worker running): read the cards
        cells = timed("guests", queries.guest_cells, session, f, now)
        sizes = timed("cohort_sizes", queries.cohort_sizes, session, f, first, last)
    activity = timed("cohorts", queries.cohort_activity, session, f, first, last)
    return Dashboard(
        filters=f,
        totals=totals,
        trend=rules.trend(days, f.period),
        bucket=rules.bucket_for(f.period.days),
        upsell=upsell,
        refunds=refunds,
        issued=issued,
        status=rules.status_counts(cells),
        rfm=rules.rfm(cells),
        cohorts=rules.cohorts(sizes, activity, first, last),
        timings=timings,
        guests_as_of=taken or now,
    )
