"""Subscription rules, pure: which line a unit pays for, whether a use is allowed, the
period of a sale or renewal, and what a refund gives back.

Where a use sits in the checkout order: after 1. the tier discount, 2. the coupon or
reward and 3. the points, one unit pays for one piece of the dearest line the
subscription covers (its price, at most what is left to pay) — like a means of payment:
it changes neither the discounts nor the accrual; then 4. a gift certificate pays from
what is still left. A purchase without lines, or whose lines the subscription does not
cover, is refused (`subscription_not_covered`): a unit is one cup, not a sum of money.
A use given with no purchase (the cashier page, `POST /subscriptions/{id}/uses`) just
consumes a unit.

Refund of the unused part: `pro_rata` gives back floor(paid * units_left / units_total)
(paid net of earlier refunds is the cap), `none` gives nothing back; the cashier may name
another amount, never more than what was paid.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from loyalwallet.errors import DomainError, Explained

REFUND_POLICIES = ("pro_rata", "none")
MAX_UNITS = 1000
MAX_PERIOD_DAYS = 3660


@dataclass(frozen=True)
class Line:
    price: int
    qty: int = 1
    sku: str | None = None
    category: str | None = None


def covers_line(covers: dict[str, Any], line: Line) -> bool:
    skus = covers.get("skus") or []
    cats = covers.get("categories") or []
    if not skus and not cats:
        return True
    return (line.sku is not None and line.sku in skus) or (
        line.category is not None and line.category in cats
    )


def covered_price(covers: dict[str, Any], lines: Sequence[Line], to_pay: int) -> int:
    """What one unit pays of this check: one piece of the dearest covered line, at most
    `to_pay`. Raises subscription_not_covered when no line is covered."""
    prices = [ln.price for ln in lines if ln.qty > 0 and covers_line(covers, ln)]
    if not prices:
        raise DomainError(
            "subscription_not_covered", "the subscription covers none of the check's lines", field="items"
        )
    return max(0, min(max(prices), to_pay))


def check_usable(
    status: str,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    units_left: int,
    daily_limit: int | None,
    used_today: int,
    now: dt.datetime,
) -> None:
    """Raises the stable error of a use that may not happen."""
    if status == "refunded":
        raise DomainError("subscription_unavailable", "the subscription was refunded")
    if status == "expired" or ends_at <= now:
        raise Explained(
            "subscription_expired", "the subscription ended on {date}", date=ends_at.date().isoformat()
        )
    if starts_at > now:
        raise DomainError("subscription_expired", "the subscription has not started yet")
    if units_left <= 0:
        raise DomainError("subscription_used_up", "no units left on the subscription")
    if daily_limit is not None and used_today >= daily_limit:
        raise Explained(
            "subscription_daily_limit",
            "already used {used_today} time(s) today (limit {daily_limit} a day)",
            used_today=used_today,
            daily_limit=daily_limit,
            extra={"used_today": used_today, "daily_limit": daily_limit},
        )


def period_end(start: dt.datetime, period_days: int) -> dt.datetime:
    return start + dt.timedelta(days=period_days)


def renewal_window(ends_at: dt.datetime, status: str, now: dt.datetime, period_days: int) -> dt.datetime:
    """A renewal adds a period after the current end (or from now when it has ended)."""
    base = ends_at if status == "active" and ends_at > now else now
    return period_end(base, period_days)


def pro_rata(paid: int, units_left: int, units_total: int) -> int:
    """The money of the unused units, rounded down; never more than `paid`."""
    if units_total <= 0 or units_left <= 0 or paid <= 0:
        return 0
    return min(paid, paid * units_left // units_total)


def refund_amount(policy: str, paid: int, units_left: int, units_total: int, asked: int | None) -> int:
    """What a refund gives back: the asked amount (never above `paid`) or the policy's."""
    if asked is not None:
        if asked > paid:
            raise Explained(
                "subscription_refund_too_large",
                "{asked} asked, {paid} was paid for the subscription",
                asked=asked,
                paid=paid,
                extra={"field": "amount", "paid": paid},
            )
        return asked
    if policy == "none":
        return 0
    return pro_rata(paid, units_left, units_total)


def validate_covers(raw: dict[str, Any] | None) -> dict[str, list[str]]:
    raw = raw or {}
    return {
        "skus": sorted({str(s) for s in raw.get("skus") or []}),
        "categories": sorted({str(c) for c in raw.get("categories") or []}),
    }
