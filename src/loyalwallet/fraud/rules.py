"""Anti-fraud rules (pure): a merchant's settings and what they say about one purchase
or refund, given the facts the service gathered. No database, no web.

Each rule is off, only alerts, or blocks. A blocked operation is refused with
`fraud_limit` (HTTP 429) and writes nothing; an alerted one goes through and the owner
is told (the alert list, Telegram).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from loyalwallet.text import Message, Plural, translate

if TYPE_CHECKING:
    from loyalwallet.merchants.actors import Actor

Action = Literal["off", "alert", "block"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Switch(_Strict):
    action: Action


class PointsLimit(_Strict):
    action: Action = "off"
    points: Annotated[StrictInt, Field(ge=1, le=10**9)]


class CountLimit(_Strict):
    action: Action = "off"
    count: Annotated[StrictInt, Field(ge=1, le=10_000)]


class MoneyLimit(_Strict):
    action: Action = "off"
    amount: Annotated[StrictInt, Field(ge=1, le=10**11)]  # minor units


class Window(_Strict):
    action: Action = "off"
    days: Annotated[StrictInt, Field(ge=0, le=3650)]


class Burst(_Strict):
    action: Action = "off"
    operations: Annotated[StrictInt, Field(ge=2, le=100_000)]
    minutes: Annotated[StrictInt, Field(ge=1, le=1440)]


class FraudRules(_Strict):
    """Per merchant, stored in Merchant.settings["fraud"]; absent keys take these defaults."""

    # Points accrued to one card in one local day (the merchant's time zone).
    max_accrual_per_day: PointsLimit = PointsLimit(action="off", points=5000)
    # Points redeemed from one card in one local day.
    max_redemption_per_day: PointsLimit = PointsLimit(action="off", points=5000)
    # Purchases on one card within the last hour (this one included).
    max_purchases_per_hour: CountLimit = CountLimit(action="alert", count=5)
    # A cashier serving their own card (the staff member's phone is the card's).
    own_card: Switch = Switch(action="block")
    # Refunds only within N days of the purchase.
    refund_window: Window = Window(action="off", days=14)
    # Refunds only by a manager or owner.
    refund_manager_only: Switch = Switch(action="off")
    # One redemption of this many points or more.
    large_redemption: PointsLimit = PointsLimit(action="off", points=3000)
    # A staff member doing more than `operations` purchases and refunds in `minutes`.
    cashier_burst: Burst = Burst(action="alert", operations=30, minutes=10)
    # Money spent from one gift certificate in one local day (this spend included).
    max_certificate_spend_per_day: MoneyLimit = MoneyLimit(action="alert", amount=1_000_000)


RULE_NAMES = tuple(FraudRules.model_fields)


@dataclass(frozen=True)
class Hit:
    rule: str
    action: str  # alert | block
    message: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PurchaseFacts:
    points_accrued: int
    points_redeemed: int
    accrued_today: int = 0  # before this purchase
    redeemed_today: int = 0
    purchases_last_hour: int = 0  # before this purchase
    own_card: bool = False
    staff_ops_recent: int | None = None  # None: the actor is not a staff member


@dataclass(frozen=True)
class RefundFacts:
    days_since_purchase: float
    by_manager: bool
    staff_ops_recent: int | None = None


# What each rule says, filled with its details (translated for the owner's Telegram).
MESSAGES: dict[str, Message] = {
    "max_accrual_per_day": Plural(
        "{points} point accrued to the card today (limit {limit})",
        "{points} points accrued to the card today (limit {limit})",
        "points",
    ),
    "max_redemption_per_day": Plural(
        "{points} point redeemed from the card today (limit {limit})",
        "{points} points redeemed from the card today (limit {limit})",
        "points",
    ),
    "max_purchases_per_hour": Plural(
        "{purchases} purchase on the card within an hour (limit {limit})",
        "{purchases} purchases on the card within an hour (limit {limit})",
        "purchases",
    ),
    "own_card": "a cashier is serving their own card",
    "refund_window": Plural(
        "a refund {days} day after the purchase (limit {limit})",
        "a refund {days} days after the purchase (limit {limit})",
        "days",
    ),
    "refund_manager_only": "a refund by a cashier (refunds are for managers)",
    "large_redemption": Plural(
        "{points} point redeemed at once (threshold {limit})",
        "{points} points redeemed at once (threshold {limit})",
        "points",
    ),
    "cashier_burst": Plural(
        "{operations} operation by one staff member in {minutes} min (limit {limit})",
        "{operations} operations by one staff member in {minutes} min (limit {limit})",
        "operations",
    ),
    "max_certificate_spend_per_day": "{spent} spent from one gift certificate today (limit {limit})",
    # Not a configurable rule: raised by the staff login (web.sessions).
    "login_locked": Plural(
        "{attempts} wrong password for {login} within {minutes} min (last from {ip}): "
        "new devices cannot sign in with this login for {minutes} min; devices that signed in before still can",
        "{attempts} wrong passwords for {login} within {minutes} min (last from {ip}): "
        "new devices cannot sign in with this login for {minutes} min; devices that signed in before still can",
        "attempts",
    ),
}


def _hit(rules: FraudRules, name: str, **details: Any) -> list[Hit]:
    action = getattr(rules, name).action
    return [] if action == "off" else [Hit(name, action, translate("en", MESSAGES[name], details), details)]


def _burst(rules: FraudRules, ops: int | None) -> list[Hit]:
    rule = rules.cashier_burst
    if ops is None or ops + 1 <= rule.operations:
        return []
    return _hit(
        rules,
        "cashier_burst",
        operations=ops + 1,
        limit=rule.operations,
        minutes=rule.minutes,
    )


def check_purchase(rules: FraudRules, f: PurchaseFacts) -> list[Hit]:
    hits: list[Hit] = []
    if f.own_card:
        hits += _hit(rules, "own_card")
    day_in = f.accrued_today + f.points_accrued
    if f.points_accrued and day_in > rules.max_accrual_per_day.points:
        hits += _hit(
            rules,
            "max_accrual_per_day",
            points=day_in,
            limit=rules.max_accrual_per_day.points,
        )
    day_out = f.redeemed_today + f.points_redeemed
    if f.points_redeemed and day_out > rules.max_redemption_per_day.points:
        hits += _hit(
            rules,
            "max_redemption_per_day",
            points=day_out,
            limit=rules.max_redemption_per_day.points,
        )
    if f.points_redeemed >= rules.large_redemption.points:
        hits += _hit(
            rules,
            "large_redemption",
            points=f.points_redeemed,
            limit=rules.large_redemption.points,
        )
    hourly = f.purchases_last_hour + 1
    if hourly > rules.max_purchases_per_hour.count:
        hits += _hit(
            rules,
            "max_purchases_per_hour",
            purchases=hourly,
            limit=rules.max_purchases_per_hour.count,
        )
    return hits + _burst(rules, f.staff_ops_recent)


def check_refund(rules: FraudRules, f: RefundFacts) -> list[Hit]:
    hits: list[Hit] = []
    if f.days_since_purchase > rules.refund_window.days:
        hits += _hit(
            rules,
            "refund_window",
            days=int(f.days_since_purchase),
            limit=rules.refund_window.days,
        )
    if not f.by_manager:
        hits += _hit(rules, "refund_manager_only")
    return hits + _burst(rules, f.staff_ops_recent)


def needs(rules: FraudRules, name: str) -> bool:
    return str(getattr(rules, name).action) != "off"


def blocking(hits: list[Hit]) -> list[Hit]:
    return [h for h in hits if h.action == "block"]


# --- the alert rows (one copy for the general path, fraud.service, and checkout.fast) --

DEDUP = dt.timedelta(minutes=10)  # the same rule for the same card/cashier: one alert


def alert_context(
    operation: str,
    card_id: int | None,
    card_code: str | None,
    actor: Actor,
    amount: int | None,
    purchase_id: int | None = None,
) -> dict[str, Any]:
    """Who and what an alert is about."""
    return {
        "operation": operation,
        "card_id": card_id,
        "card_code": card_code,
        "actor_type": actor.kind,
        "actor_id": actor.id,
        "actor_name": actor.name,
        "location_id": actor.location_id,
        "amount": amount,
        "purchase_id": purchase_id,
    }


def dedup_key(hit: Hit, action: str, context: dict[str, Any]) -> str:
    """The same rule for the same card and cashier within DEDUP counts on one alert."""
    return (
        f"{hit.rule}:{context.get('card_id') or ''}:{context.get('actor_type') or ''}:"
        f"{context.get('actor_id') or ''}:{action}"
    )


def alert_fields(
    merchant_id: int, hit: Hit, action: str, context: dict[str, Any], now: dt.datetime
) -> dict[str, Any]:
    """The columns of a new alert (fraud.models.Alert)."""
    return {
        "merchant_id": merchant_id,
        "rule": hit.rule,
        "action": action,
        "operation": context["operation"],
        "card_id": context.get("card_id"),
        "card_code": context.get("card_code"),
        "actor_type": context.get("actor_type"),
        "actor_id": context.get("actor_id"),
        "actor_name": context.get("actor_name") or None,
        "location_id": context.get("location_id"),
        "amount": context.get("amount"),
        "message": hit.message[:500],
        "details": {
            **hit.details,
            **({"purchase_id": context["purchase_id"]} if context.get("purchase_id") else {}),
        },
        "dedup_key": dedup_key(hit, action, context),
        "count": 1,
        "created_at": now,
        "last_seen_at": now,
    }


@dataclass(frozen=True)
class CertificateSpendFacts:
    amount: int  # this spend, minor units
    spent_today: int = 0  # before this spend
    currency: str = "RUB"


def check_certificate_spend(rules: FraudRules, f: CertificateSpendFacts) -> list[Hit]:
    from loyalwallet.text import money

    rule = rules.max_certificate_spend_per_day
    day = f.spent_today + f.amount
    if day > rule.amount:
        return _hit(
            rules,
            "max_certificate_spend_per_day",
            spent=money(day, f.currency),
            limit=money(rule.amount, f.currency),
        )
    return []
