"""A subscription in a purchase on a loyalty card (checkout.service calls these).

`subscription` (its id) in the purchase body: after the tier discount, the coupon and the
points, one unit pays for one piece of the dearest line the subscription covers
(subscriptions.rules); a gift certificate then pays from what is still left. The card is
locked first, then the subscription (the lock order everywhere). A subscription on
another card is `subscription_foreign`; another merchant's is not found.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalwallet.cards.models import Card
from loyalwallet.errors import DomainError
from loyalwallet.merchants.actors import Actor
from loyalwallet.outbox.service import emit_event
from loyalwallet.subscriptions import ledger, rules
from loyalwallet.subscriptions.models import Subscription, SubscriptionEntry
from loyalwallet.subscriptions.service import consume, view


@dataclass
class Use:
    sub: Subscription
    paid: int


def price(
    session: Session,
    card: Card,
    subscription_id: int,
    lines: Sequence[rules.Line],
    to_pay: int,
    now: dt.datetime,
    *,
    lock: bool,
) -> Use:
    """What one unit pays of `to_pay`; raises the subscription_* errors (the quote too)."""
    sub = ledger.get(session, card.merchant_id, subscription_id, lock=lock)
    if sub.card_id != card.id:
        raise DomainError(
            "subscription_foreign", "this subscription belongs to another card", field="subscription"
        )
    day = ledger.local_day(session, sub.merchant_id, now)
    used = ledger.used_on(session, sub.id, day)
    rules.check_usable(sub.status, sub.starts_at, sub.ends_at, sub.units_left, sub.daily_limit, used, now)
    return Use(sub, rules.covered_price(sub.covers or {}, lines, to_pay))


def spend(
    session: Session, actor: Actor, use: Use, purchase_id: int, location_id: int | None, now: dt.datetime
) -> None:
    consume(session, actor, use.sub, now, purchase_id=purchase_id, location_id=location_id, covered=use.paid)


def answer(use: Use, session: Session, now: dt.datetime) -> dict[str, Any]:
    """What the purchase (or quote) answer adds when a subscription is used."""
    return {"subscription_paid": use.paid, "subscription": view(session, use.sub, now)}


def refund(
    session: Session,
    actor: Actor,
    purchase_id: int,
    to_pay: int,
    money_before: int,
    money_after: int,
    fully_refunded: bool,
    now: dt.datetime,
) -> dict[str, Any] | None:
    """A purchase refunded in full gives its use back to a subscription still running
    (within the period; the daily count drops with it). Of the money a refund returns,
    the part the unit paid (in proportion, as for a certificate) is not cash: it is
    `subscription_share`, taken off the cash. Returns what the refund answer adds, or
    None when no subscription was used."""
    uses = session.execute(
        select(
            SubscriptionEntry.id,
            SubscriptionEntry.subscription_id,
            SubscriptionEntry.local_day,
            SubscriptionEntry.covered,
        ).where(SubscriptionEntry.purchase_id == purchase_id, SubscriptionEntry.kind == "use")
    ).all()
    if not uses:
        return None
    returned = 0
    share = 0
    out = None
    for use_id, sub_id, day, covered in uses:
        if to_pay > 0:
            share += covered * money_after // to_pay - covered * money_before // to_pay
        sub = ledger.get(session, actor.merchant_id, sub_id, lock=True)
        done = session.scalar(
            select(SubscriptionEntry.id).where(
                SubscriptionEntry.use_id == use_id, SubscriptionEntry.kind == "return"
            )
        )
        if fully_refunded and done is None and sub.status == "active" and sub.ends_at > now:
            # The unit goes back on the day it was used: that day's count drops.
            ledger.move(session, sub, "return", 1, 0, actor, now, day, purchase_id=purchase_id, use_id=use_id)
            emit_event(
                session, actor.merchant_id, "subscription.returned", ledger.event_payload(sub, use_id=use_id)
            )
            returned += 1
        out = view(session, sub, now)
    return {"subscription_returned": returned, "subscription_share": share, "subscription": out}
