"""The `subscription_ending` trigger's guests: a running subscription ends within the
trigger's `days_before` days (campaigns.delivery.CANDIDATE_SOURCES, set by wiring).
The occasion names the subscription and its end, so a renewal (a new end) reminds
again and a run later the same day does not."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from loyalwallet.subscriptions.models import Subscription


def ending_soon(
    session: Session, cards: Select[Any], merchant_id: int, params: Any, now: dt.datetime, tz: dt.tzinfo
) -> list[tuple[int, str, dict[str, Any]]]:
    rows = session.execute(
        select(
            Subscription.card_id,
            Subscription.id,
            Subscription.name,
            Subscription.units_left,
            Subscription.ends_at,
        )
        .where(
            Subscription.merchant_id == merchant_id,
            Subscription.status == "active",
            Subscription.ends_at > now,
            Subscription.ends_at <= now + dt.timedelta(days=params.days_before),
            Subscription.card_id.in_(cards),
        )
        .order_by(Subscription.id)
    ).all()
    out = []
    for card_id, sub_id, name, left, ends in rows:
        day = ends.astimezone(tz).date()
        out.append(
            (
                card_id,
                f"subscription:{sub_id}:{day.isoformat()}",
                {"name": name, "left": left, "date": f"{day:%d.%m}"},
            )
        )
    return out
