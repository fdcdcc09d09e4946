"""The reminder before a subscription ends, through the existing triggers: a
`subscription_ending` trigger messages the card once per subscription and end date (a
renewal, a new end, reminds again); a subscription far from its end is left alone."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy import select, update

from loyalwallet import db
from loyalwallet.campaigns import triggers
from loyalwallet.campaigns.models import Trigger, TriggerFiring
from loyalwallet.cards.models import Card
from loyalwallet.merchants.models import Merchant
from loyalwallet.outbox import worker
from loyalwallet.subscriptions.models import Subscription
from support import Shop


def _noon_zone(shop: Shop) -> ZoneInfo:
    offset = 12 - db.utcnow().hour  # UTC+offset; Etc/GMT signs are inverted
    name = "Etc/GMT" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"
    with db.transaction() as session:
        session.execute(update(Merchant).where(Merchant.id == shop.merchant_id).values(timezone=name))
    return ZoneInfo(name)


def _tick() -> None:
    triggers.schedule_due()
    worker.drain()


def _message(shop: Shop, code: str) -> str | None:
    with db.read() as session:
        return session.scalar(
            select(Card.message).where(Card.merchant_id == shop.merchant_id, Card.code == code)
        )


def _ends_in(sub_id: int, days: int) -> None:
    with db.transaction() as session:
        session.execute(
            update(Subscription)
            .where(Subscription.id == sub_id)
            .values(ends_at=db.utcnow() + dt.timedelta(days=days, hours=1))
        )


def test_a_subscription_ending_soon_is_reminded_once_per_end(shop: Shop) -> None:
    tz = _noon_zone(shop)
    pid = shop.program("bonus")
    soon, later = shop.card(pid)["code"], shop.card(pid)["code"]
    plan = shop.post(
        "/api/v1/subscription-plans",
        {"name": "Кофе", "units": 20, "period_days": 30, "price": 1},
        role="manager",
    ).json()
    a = shop.post("/api/v1/subscriptions", {"plan_id": plan["id"], "card": soon}, role="cashier").json()
    shop.post("/api/v1/subscriptions", {"plan_id": plan["id"], "card": later}, role="cashier")
    _ends_in(a["id"], 2)
    r = shop.post(
        "/api/v1/triggers",
        {
            "kind": "subscription_ending",
            "params": {
                "days_before": 3,
                "send_at": "00:00",
                "message": {"header": "{name}", "body": "{name}: {left} left, ends {date}"},
            },
        },
        role="manager",
    )
    assert r.status_code == 201, r.text
    trig = r.json()
    _tick()
    end = (db.utcnow() + dt.timedelta(days=2, hours=1)).astimezone(tz)
    assert _message(shop, soon) == f"Кофе: 20 left, ends {end:%d.%m}"
    assert _message(shop, later) is None
    with db.transaction() as session:  # the next day: still in the window, no second reminder
        session.execute(
            update(Trigger).where(Trigger.id == trig["id"]).values(last_run_on=None, next_run_at=db.utcnow())
        )
    _tick()
    with db.read() as session:
        fired = session.scalars(
            select(TriggerFiring.occasion).where(TriggerFiring.trigger_id == trig["id"])
        ).all()
    assert len(fired) == 1
