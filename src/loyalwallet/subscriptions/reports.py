"""Reports on subscriptions: active now, uses per local day, revenue (sales and renewals
net of refunds) over a period; the dashboard tile."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loyalwallet.db import utcnow
from loyalwallet.merchants.service import get_merchant, today
from loyalwallet.subscriptions.models import Subscription, SubscriptionEntry
from loyalwallet.text import money


def summary(
    session: Session, merchant_id: int, since: dt.date | None = None, until: dt.date | None = None
) -> dict[str, Any]:
    """Over the period (the merchant's local days, `until` included): sums by kind, uses
    per day; now: the active subscriptions and their units left."""
    merchant = get_merchant(session, merchant_id)
    now = utcnow()
    where = [SubscriptionEntry.merchant_id == merchant_id]
    if since is not None:
        where.append(SubscriptionEntry.local_day >= since)
    if until is not None:
        where.append(SubscriptionEntry.local_day <= until)
    by_kind = {
        kind: (int(units), int(amount), int(n))
        for kind, units, amount, n in session.execute(
            select(
                SubscriptionEntry.kind,
                func.coalesce(func.sum(SubscriptionEntry.units), 0),
                func.coalesce(func.sum(SubscriptionEntry.amount), 0),
                func.count(),
            )
            .where(*where)
            .group_by(SubscriptionEntry.kind)
        )
    }
    per_day = session.execute(
        select(SubscriptionEntry.local_day, func.sum(-SubscriptionEntry.units))
        .where(*where, SubscriptionEntry.kind.in_(("use", "return")))
        .group_by(SubscriptionEntry.local_day)
        .order_by(SubscriptionEntry.local_day)
    ).all()
    active = session.execute(
        select(func.count(), func.coalesce(func.sum(Subscription.units_left), 0)).where(
            Subscription.merchant_id == merchant_id,
            Subscription.status == "active",
            Subscription.ends_at > now,
        )
    ).one()

    def k(kind: str, i: int) -> int:
        return by_kind.get(kind, (0, 0, 0))[i]

    return {
        "currency": merchant.currency,
        "from": since.isoformat() if since else None,
        "to": until.isoformat() if until else None,
        "sold_count": k("sale", 2),
        "renewed_count": k("renewal", 2),
        "revenue": k("sale", 1) + k("renewal", 1) + k("refund", 1),
        "refunded": -k("refund", 1),
        "uses": -(k("use", 0) + k("return", 0)),
        "uses_per_day": [{"day": day.isoformat(), "uses": int(n)} for day, n in per_day if n],
        "units_expired": -k("expiry", 0),
        "active": int(active[0]),
        "units_outstanding": int(active[1]),
    }


def dashboard_tile(
    session: Session, merchant_id: int, start: dt.date, end: dt.date, _: Callable[[str], str]
) -> list[dict[str, str]]:
    """The dashboard's subscription tile: active now, uses today, revenue in the period.
    Nothing for a merchant who never sold one."""
    s = summary(session, merchant_id, start, end)
    if not s["active"] and not s["sold_count"] and not s["revenue"]:
        return []
    day = today(get_merchant(session, merchant_id))
    uses_today = summary(session, merchant_id, day, day)["uses"]
    hint = _("uses today %(uses)s · revenue %(revenue)s") % {
        "uses": uses_today,
        "revenue": money(s["revenue"], s["currency"], trim_zero_cents=True),
    }
    return [
        {"id": "subscriptions", "label": _("Active subscriptions"), "value": str(s["active"]), "hint": hint}
    ]
