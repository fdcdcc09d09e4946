"""Pure computations of the dashboard: periods, rates, trend buckets, RFM, cohorts.

No SQL and no web here: the queries (analytics/queries.py) hand over small aggregated
rows, these functions turn them into the figures docs/metrics.md defines.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from loyalwallet.errors import DomainError

ACTIVE_DAYS = 30
LAPSED_DAYS = 90
MAX_PERIOD_DAYS = 3 * 366


@dataclass(frozen=True)
class Period:
    """Whole local days [start, end] in the merchant's time zone."""

    start: dt.date
    end: dt.date
    tz: str

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def utc_bounds(self) -> tuple[dt.datetime, dt.datetime]:
        zone = zoneinfo.ZoneInfo(self.tz)
        lo = dt.datetime.combine(self.start, dt.time(), zone).astimezone(dt.UTC)
        hi = dt.datetime.combine(self.end + dt.timedelta(days=1), dt.time(), zone).astimezone(dt.UTC)
        return lo, hi


def parse_period(
    start: str | None, end: str | None, today: dt.date, tz: str, default_days: int = 30
) -> Period:
    try:
        end_d = dt.date.fromisoformat(end) if end else today
        start_d = dt.date.fromisoformat(start) if start else end_d - dt.timedelta(days=default_days - 1)
    except ValueError:
        raise DomainError("validation_error", "dates are YYYY-MM-DD", field="from") from None
    if start_d > end_d:
        raise DomainError("validation_error", "the period starts after it ends", field="from")
    if (end_d - start_d).days + 1 > MAX_PERIOD_DAYS:
        raise DomainError("validation_error", "the period is longer than three years", field="from")
    return Period(start_d, end_d, tz)


def ratio(part: int, whole: int) -> float | None:
    """part/whole for display (None when whole is 0). Never used for money."""
    return part / whole if whole else None


def avg(total: int, count: int) -> int | None:
    """Average in minor units, floored (money stays integer)."""
    return total // count if count else None


# --- trend -------------------------------------------------------------------------------


def bucket_for(days: int) -> str:
    return "day" if days <= 45 else "week" if days <= 200 else "month"


def bucket_start(day: dt.date, bucket: str) -> dt.date:
    if bucket == "week":
        return day - dt.timedelta(days=day.weekday())
    if bucket == "month":
        return day.replace(day=1)
    return day


@dataclass
class Point:
    start: dt.date
    purchases: int = 0
    revenue: int = 0

    @property
    def avg_check(self) -> int | None:
        return avg(self.revenue, self.purchases)


def net_of_refunds(
    days: Iterable[tuple[str, int, int]], refunded: Iterable[tuple[str, int, int]]
) -> list[tuple[str, int, int]]:
    """Local-day totals net of the refunds of those days' purchases: a purchase refunded
    in full no longer counts as a purchase, and every refunded amount leaves revenue."""
    out = [(d, int(n), int(total)) for d, n, total in days]
    out += [(d, -int(n), -int(total)) for d, n, total in refunded]
    return out


def net_totals(totals: dict[str, int]) -> dict[str, int]:
    """The period's figures net of refunds: `revenue` and `net_purchases` (the ones the
    average check divides) keep what was refunded out; `revenue_gross` is what was sold."""
    gross = totals["revenue"]
    return {
        **totals,
        "revenue_gross": gross,
        "revenue": gross - totals.get("refunded", 0),
        "net_purchases": totals["purchases"] - totals.get("refunded_purchases", 0),
    }


def trend(days: Iterable[tuple[str, int, int]], period: Period) -> list[Point]:
    """Purchases and revenue per day/week/month from local-day totals, every bucket of
    the period present (empty ones at zero)."""
    bucket = bucket_for(period.days)
    points: dict[dt.date, Point] = {}
    day = period.start
    while day <= period.end:
        key = bucket_start(day, bucket)
        points.setdefault(key, Point(key))
        day += dt.timedelta(days=1)
    for text, count, revenue in days:
        key = bucket_start(dt.date.fromisoformat(text), bucket)
        if key in points:
            points[key].purchases += int(count)
            points[key].revenue += int(revenue)
    return [points[k] for k in sorted(points)]


# --- guest status and RFM ------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """Guests sharing a recency (days since the last purchase; None = never bought) and a
    number of purchases, with their total spend."""

    recency: int | None
    visits: int
    guests: int
    spend: int


def status_counts(cells: Iterable[Cell]) -> dict[str, int]:
    out = {"active": 0, "at_risk": 0, "lapsed": 0, "never": 0}
    for c in cells:
        if c.recency is None or c.visits == 0:
            out["never"] += c.guests
        elif c.recency <= ACTIVE_DAYS:
            out["active"] += c.guests
        elif c.recency <= LAPSED_DAYS:
            out["at_risk"] += c.guests
        else:
            out["lapsed"] += c.guests
    return out


# R and F are scored on fixed café thresholds, not on quintiles of the merchant's own
# guests. A small café's figures are mostly ties (most guests came once, many came
# today), and quintiles of ties are arbitrary: when everybody bought today, ranking put
# them all in "lost". Thresholds give equal values the same score, do not shift when
# other guests come, read plainly ("came within a week") and can be checked against a
# guest's card. The recency bounds are those of "guests now" (status_counts): R >= 3 is
# active (<= 30 days), R = 2 at risk (31-90), R = 1 lapsed (> 90). The price: the bounds
# suit a café's weekly rhythm; a business visited monthly would want its own.
R_DAYS = (7, 14, ACTIVE_DAYS, LAPSED_DAYS)  # days since the last purchase: <=7 -> 5 ... >90 -> 1
F_VISITS = (2, 3, 5, 10)  # purchases: 1 -> 1, 2 -> 2, 3-4 -> 3, 5-9 -> 4, 10+ -> 5


def r_score(days: int) -> int:
    """Recency score 1..5 (5 = came most recently) from days since the last purchase."""
    return 5 - sum(days > bound for bound in R_DAYS)


def f_score(visits: int) -> int:
    """Frequency score 1..5 (5 = comes most often) from the number of purchases."""
    return 1 + sum(visits >= bound for bound in F_VISITS)


SEGMENTS = (
    "champions",
    "loyal",
    "potential",
    "new",
    "attention",
    "cant_lose",
    "at_risk",
    "lost",
)


def segment(r: int, f: int) -> str:
    """The segment of an R x F cell (docs/metrics.md has the grid)."""
    if r >= 4:
        return "champions" if f >= 4 else "potential" if f >= 2 else "new"
    if r == 3:
        return "loyal" if f >= 4 else "attention"
    if f >= 4:
        return "cant_lose"
    return "at_risk" if r == 2 else "lost"


def rfm_segment(recency: int, visits: int) -> str:
    """The segment of a guest who bought: the dashboard and campaign segments both use it."""
    return segment(r_score(recency), f_score(visits))


@dataclass
class Segment:
    key: str
    guests: int = 0
    spend: int = 0
    visits: int = 0
    recency_sum: int = 0

    @property
    def avg_spend(self) -> int | None:
        return avg(self.spend, self.guests)

    @property
    def avg_visits(self) -> float | None:
        return ratio(self.visits, self.guests)

    @property
    def avg_recency(self) -> float | None:
        return ratio(self.recency_sum, self.guests)


@dataclass
class Rfm:
    segments: list[Segment]
    guests: int
    spend: int
    grid: dict[tuple[int, int], int] = field(default_factory=dict)  # (R, F) -> guests


def rfm(cells: Iterable[Cell]) -> Rfm:
    """RFM segments of guests who bought at least once: R and F scored on the café
    thresholds above, segments from the R×F grid, M shown as the segment's spend."""
    segs = {key: Segment(key) for key in SEGMENTS}
    grid: dict[tuple[int, int], int] = defaultdict(int)
    for c in cells:
        if c.recency is None or c.visits <= 0:
            continue
        r, f = r_score(c.recency), f_score(c.visits)
        s = segs[segment(r, f)]
        s.guests += c.guests
        s.spend += c.spend
        s.visits += c.visits * c.guests
        s.recency_sum += c.recency * c.guests
        grid[(r, f)] += c.guests
    return Rfm(
        segments=[segs[k] for k in SEGMENTS],
        guests=sum(s.guests for s in segs.values()),
        spend=sum(s.spend for s in segs.values()),
        grid=dict(grid),
    )


# --- cohorts -----------------------------------------------------------------------------


def month_add(month: str, n: int) -> str:
    y, m = int(month[:4]), int(month[5:7])
    total = y * 12 + (m - 1) + n
    return f"{total // 12:04d}-{total % 12 + 1:02d}"


def months_between(a: str, b: str) -> int:
    return (int(b[:4]) * 12 + int(b[5:7])) - (int(a[:4]) * 12 + int(a[5:7]))


@dataclass
class Cohort:
    month: str
    size: int
    active: list[int]  # guests who bought in month 0, 1, 2 ... after joining

    @property
    def retention(self) -> list[float | None]:
        return [ratio(a, self.size) for a in self.active]


def cohorts(
    sizes: dict[str, int], activity: Iterable[tuple[str, str, int]], first: str, last: str
) -> list[Cohort]:
    """Cohorts joined in months first..last (from the first month with a card);
    `activity` is (cohort month, month, guests)."""
    active: dict[tuple[str, int], int] = defaultdict(int)
    for cohort_month, month, guests in activity:
        k = months_between(cohort_month, month)
        if k >= 0:
            active[(cohort_month, k)] += int(guests)
    out = []
    month = first
    while month <= last:
        span = months_between(month, last) + 1
        out.append(Cohort(month, sizes.get(month, 0), [active.get((month, k), 0) for k in range(span)]))
        month = month_add(month, 1)
    # Months before the first card was issued are no cohort at all: a young café sees
    # its own months, not a column of zeros.
    while out and out[0].size == 0:
        out.pop(0)
    return out


def month_of(day: dt.date) -> str:
    return f"{day.year:04d}-{day.month:02d}"
